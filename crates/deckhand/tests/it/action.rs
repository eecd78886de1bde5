//! action.yml, checked against the binary: every input reaches a real flag's environment
//! variable, and running the action's deploy step (its env, its command) on the sandbox writes
//! every output the action declares.

use std::collections::BTreeMap;

use yaml_rust2::{Yaml, YamlLoader};

use crate::bed::Bed;
use crate::deploy::command::{good_image, run_with_env, stable_service};

fn action() -> Yaml {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../action.yml"))
        .expect("action.yml at the repository root");
    YamlLoader::load_from_str(&text)
        .expect("action.yml is YAML")
        .remove(0)
}

fn keys(map: &Yaml) -> Vec<String> {
    map.as_hash()
        .expect("a mapping")
        .keys()
        .map(|k| k.as_str().unwrap().to_string())
        .collect()
}

/// The deploy step's `env`: variable → its `${{ … }}` expression.
fn deploy_env(action: &Yaml) -> BTreeMap<String, String> {
    let steps = action["runs"]["steps"].as_vec().unwrap();
    let deploy = steps
        .iter()
        .find(|s| s["id"].as_str() == Some("deploy"))
        .expect("a step with id deploy");
    assert_eq!(deploy["run"].as_str(), Some("deckhand deploy"));
    deploy["env"]
        .as_hash()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().unwrap().to_string(),
                v.as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn every_input_reaches_a_flag_of_deckhand_deploy() {
    let action = action();
    assert_eq!(action["runs"]["using"].as_str(), Some("composite"));
    let env = deploy_env(&action);
    let help = crate::bed::deckhand(std::path::Path::new("."), &["deploy", "--help"], &[]);
    help.expect_code(0);
    for (var, expression) in &env {
        assert!(
            help.stdout.contains(&format!("[env: {var}=")),
            "{var} is not an environment variable of `deckhand deploy`:\n{}",
            help.stdout
        );
        assert!(
            expression.starts_with("${{ ") || var == "DECKHAND_CI",
            "{var}: {expression}"
        );
    }
    for input in keys(&action["inputs"]) {
        if input == "version" {
            continue; // used by the install step
        }
        let expression = format!("${{{{ inputs.{input} }}}}");
        assert!(
            env.values().any(|v| *v == expression),
            "input {input} reaches no DECKHAND_* variable"
        );
    }
    // No step splices an input into its script text (injection).
    for step in action["runs"]["steps"].as_vec().unwrap() {
        let run = step["run"].as_str().unwrap_or_default();
        assert!(
            !run.contains("${{"),
            "a step's script interpolates an expression: {run}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deploy_step_writes_every_declared_output() {
    let bed = Bed::get();
    let (sandbox, _client, _good) = stable_service(false).await;
    let image = good_image(&bed).await;
    let action = action();
    let inputs: BTreeMap<&str, &str> = [
        ("cluster", "c"),
        ("service", "web"),
        ("container", "app"),
        ("image", image.as_str()),
        ("dry-run", "true"),
        ("timeout", "60s"),
    ]
    .into();
    // What the runner would set: each expression with its input's value, "" when not given.
    let env: Vec<(String, String)> = deploy_env(&action)
        .into_iter()
        .map(|(var, expression)| {
            let value = expression
                .strip_prefix("${{ inputs.")
                .and_then(|e| e.strip_suffix(" }}"))
                .map(|input| inputs.get(input).copied().unwrap_or("").to_string())
                .unwrap_or(expression);
            (var, value)
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("output");
    let mut all: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    all.push(("GITHUB_OUTPUT", output.to_str().unwrap()));
    let run = run_with_env(&sandbox, None, &["deploy"], &all).await;
    run.expect_code(0);
    let written = std::fs::read_to_string(&output).unwrap();
    for name in keys(&action["outputs"]) {
        let value = action["outputs"][name.as_str()]["value"].as_str().unwrap();
        assert_eq!(value, format!("${{{{ steps.deploy.outputs.{name} }}}}"));
        assert!(
            written.lines().any(|l| l.starts_with(&format!("{name}="))),
            "output {name} is not written:\n{written}"
        );
    }
    assert!(written.contains("result=dry-run\n"), "{written}");
    assert!(written.contains(&format!("image={image}\n")), "{written}");
    sandbox.stop().await;
}

#[test]
fn the_workflows_are_yaml_and_ci_runs_the_test_command() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../.github/workflows");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let doc = YamlLoader::load_from_str(&text)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .remove(0);
        assert!(!doc["jobs"].is_badvalue(), "{}: no jobs", path.display());
        names.push(path.file_name().unwrap().to_string_lossy().into_owned());
        if path.ends_with("ci.yml") {
            assert!(
                text.contains("scripts/test"),
                "ci.yml runs what .ci/run runs"
            );
        }
        if path.ends_with("action-test.yml") {
            assert!(text.contains("uses: ./"), "the action is exercised");
        }
    }
    names.sort();
    assert_eq!(names, ["action-test.yml", "ci.yml", "release.yml"]);
}
