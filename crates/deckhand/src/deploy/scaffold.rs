//! What `deckhand init` writes for a live service: its task definition as a RegisterTaskDefinition
//! file, and a deckhand.toml that deploys a new image into the right containers (pure).

use serde_json::Value;

use super::taskdef::{self, InputError, TaskDef};
use crate::image::reference::ImageRef;

/// The task definition file `deckhand init` writes beside deckhand.toml.
pub const TASK_DEFINITION_FILE: &str = "taskdef.json";

/// Tags deckhand sets on the revisions it registers (`deckhand:sha`, `deckhand:previous`, …):
/// they describe one revision, never the next one.
pub const OWN_TAG_PREFIX: &str = "deckhand:";

/// The live service, as `deckhand init` read it.
#[derive(Debug, Clone, PartialEq)]
pub struct Live {
    /// As given (name or ARN).
    pub cluster: String,
    /// As ECS names it.
    pub service: String,
    /// The region the service was read in, when known.
    pub region: Option<String>,
    /// The revision the service runs (`family:N`).
    pub revision: String,
}

/// Which containers take the image, and the ECR repository it comes from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    /// The ECR repository name (`team/web`), when a container's image is in ECR.
    pub repository: Option<String>,
    /// The containers that take the new image; empty when no image is in ECR.
    pub containers: Vec<String>,
    /// What a person should know about the choice: said in the log and as comments.
    pub notes: Vec<String>,
}

/// Whether `host` is an ECR registry by its name: `<account>.dkr.ecr[-fips].<region>.amazonaws.com`
/// (or `.amazonaws.com.cn`).
pub fn is_ecr_host(host: &str) -> bool {
    let Some((account, rest)) = host.split_once('.') else {
        return false;
    };
    let Some(rest) = rest
        .strip_prefix("dkr.ecr.")
        .or_else(|| rest.strip_prefix("dkr.ecr-fips."))
    else {
        return false;
    };
    let region = rest
        .strip_suffix(".amazonaws.com")
        .or_else(|| rest.strip_suffix(".amazonaws.com.cn"));
    account.len() == 12
        && account.chars().all(|c| c.is_ascii_digit())
        && region.is_some_and(|r| {
            !r.is_empty() && r.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

/// The containers that take the image and its repository, from each container's (name, image)
/// and which images are in ECR (`in_ecr`, asked once per image). The image containers are those
/// from ECR; when they use several repositories, those of the repository most of them use (the
/// first one on a tie) take the image and the others keep theirs.
pub fn plan(containers: &[(String, String)], in_ecr: impl Fn(&ImageRef) -> bool) -> Plan {
    // (repository uri, repository name, containers), in the order first seen.
    let mut groups: Vec<(String, String, Vec<String>)> = Vec::new();
    for (name, image) in containers {
        let Ok(reference) = ImageRef::parse(image) else {
            continue;
        };
        if !in_ecr(&reference) {
            continue;
        }
        let uri = reference.repository_uri();
        match groups.iter_mut().find(|(u, _, _)| *u == uri) {
            Some((_, _, names)) => names.push(name.clone()),
            None => groups.push((uri, reference.repository().to_string(), vec![name.clone()])),
        }
    }
    let Some(best) = (0..groups.len()).fold(None, |best: Option<usize>, i| match best {
        Some(b) if groups[b].2.len() >= groups[i].2.len() => Some(b),
        _ => Some(i),
    }) else {
        let listed: Vec<String> = containers
            .iter()
            .map(|(n, i)| format!("{n} ({i})"))
            .collect();
        return Plan {
            repository: None,
            containers: Vec::new(),
            notes: vec![format!(
                "no container's image is in ECR ({}): set `repository` (or pass --image) and \
                 `containers` before deploying",
                listed.join(", ")
            )],
        };
    };
    let (_, repository, chosen) = groups[best].clone();
    let mut notes = Vec::new();
    for (i, (uri, _, names)) in groups.iter().enumerate() {
        if i != best {
            notes.push(format!(
                "{} use{} {uri}, another ECR repository than {repository}, and keep{} {}",
                names.join(", "),
                if names.len() == 1 { "s" } else { "" },
                if names.len() == 1 { "s" } else { "" },
                if names.len() == 1 {
                    "its image"
                } else {
                    "their images"
                },
            ));
        }
    }
    Plan {
        repository: Some(repository),
        containers: chosen,
        notes,
    }
}

/// The service's DescribeTaskDefinition output as RegisterTaskDefinition input: read-only
/// fields and nulls dropped (as a deploy drops them), the tags kept but deckhand's own.
pub fn task_definition(described: Value) -> Result<TaskDef, InputError> {
    let mut td = taskdef::from_value(described)?;
    td.tags.retain(|(k, _)| !k.starts_with(OWN_TAG_PREFIX));
    Ok(td)
}

/// The task definition file's text: pretty JSON, keys in a stable order, a trailing newline.
pub fn task_definition_text(td: &TaskDef) -> String {
    let mut text = serde_json::to_string_pretty(&td.request()).unwrap_or_default();
    text.push('\n');
    text
}

/// (container, variable) of every plaintext environment value that should be a secret: of a
/// secret-looking name, or holding a URL with a password.
pub fn plaintext_secrets(td: &TaskDef) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for c in td.body["containerDefinitions"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let container = c["name"].as_str().unwrap_or_default();
        for e in c["environment"].as_array().into_iter().flatten() {
            let (Some(name), Some(value)) = (e["name"].as_str(), e["value"].as_str()) else {
                continue;
            };
            if !crate::secrets::values_to_mask([(name, value)]).is_empty() {
                out.push((container.to_string(), name.to_string()));
            }
        }
    }
    out
}

/// Why deckhand cannot deploy a service on this deployment controller (`None`: it can);
/// `nothing` ends the sentence ("nothing was written").
pub fn unsupported_controller(service: &str, controller: &str, nothing: &str) -> Option<String> {
    match controller {
        "ECS" | "CODE_DEPLOY" | "" => None,
        other => Some(format!(
            "service {service} uses the {other} deployment controller: its task sets are \
             managed by a controller outside ECS and CodeDeploy, whose deployments deckhand \
             cannot start or judge. deckhand deploys services on the ECS and CODE_DEPLOY \
             controllers; {nothing}"
        )),
    }
}

/// deckhand.toml's text: every key one `deckhand deploy` needs, each with a short comment;
/// `task_definition_file` is relative to the file.
pub fn config_text(live: &Live, plan: &Plan, task_definition_file: &str) -> String {
    let q = |s: &str| toml::Value::String(s.to_string()).to_string();
    let list = |items: &[String]| {
        let quoted: Vec<String> = items.iter().map(|s| q(s)).collect();
        format!("[{}]", quoted.join(", "))
    };
    let mut out = String::new();
    out.push_str(&format!(
        "# deckhand settings for ECS service {} (cluster {}), written by `deckhand init` from\n\
         # revision {}. Flags and DECKHAND_* variables override every key.\n\n",
        live.service, live.cluster, live.revision
    ));
    out.push_str(&format!("cluster = {}\n", q(&live.cluster)));
    if let Some(region) = &live.region {
        out.push_str(&format!("region = {}\n", q(region)));
    }
    match &plan.repository {
        Some(repository) => out.push_str(&format!(
            "# The ECR repository `deckhand deploy` builds and pushes to (--image deploys an\n\
             # existing image instead).\n\
             repository = {}\n",
            q(repository)
        )),
        None => out.push_str(
            "# No container's image is in ECR: name the ECR repository to build and push to,\n\
             # or deploy an existing image with --image.\n\
             # repository = \"team/web\"\n",
        ),
    }
    out.push_str(&format!(
        "# The task definition each deploy registers, with the new image (relative to this file).\n\
         task-definition = {}\n",
        q(task_definition_file)
    ));
    out.push_str(&format!(
        "# How long the deployment (and again a rollback) may take to become stable.\n\
         timeout = {}\n",
        q(&humane(crate::settings::DEFAULT_TIMEOUT))
    ));
    out.push_str(
        "# On failure, go back to the revision that was live (auto), or leave it (never).\n\
         rollback = \"auto\"\n",
    );
    out.push_str(&format!("\n[[services]]\nname = {}\n", q(&live.service)));
    for note in &plan.notes {
        out.push_str(&format!("# {note}\n"));
    }
    if plan.containers.is_empty() {
        out.push_str(
            "# The containers that take the new image (default: those whose image is from the\n\
             # image's repository).\n\
             # containers = [\"app\"]\n",
        );
    } else {
        out.push_str(&format!(
            "# The containers that take the new image.\ncontainers = {}\n",
            list(&plan.containers)
        ));
    }
    out
}

/// A duration as deckhand.toml takes it: whole minutes as `10m`, else seconds.
fn humane(d: std::time::Duration) -> String {
    let s = d.as_secs();
    if s > 0 && s % 60 == 0 {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::path::Path;

    const ECR: &str = "123456789012.dkr.ecr.eu-west-1.amazonaws.com";

    fn by_name(r: &ImageRef) -> bool {
        r.registry().is_some_and(is_ecr_host)
    }

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(n, i)| (n.to_string(), i.to_string()))
            .collect()
    }

    #[test]
    fn ecr_hosts_are_known_by_their_name() {
        for (host, want) in [
            (ECR, true),
            (
                "123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com",
                true,
            ),
            ("123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn", true),
            ("12345.dkr.ecr.eu-west-1.amazonaws.com", false),
            ("123456789012.dkr.ecr..amazonaws.com", false),
            ("123456789012.dkr.ecr.eu-west-1.example.com", false),
            ("public.ecr.aws", false),
            ("ghcr.io", false),
            ("127.0.0.1:5000", false),
        ] {
            assert_eq!(is_ecr_host(host), want, "{host}");
        }
    }

    #[test]
    fn the_image_containers_are_those_from_ecr() {
        let web = format!("{ECR}/team/web:abc");
        let pinned = format!("{ECR}/team/web@sha256:{}", "a".repeat(64));
        let agent = format!("{ECR}/ops/agent:7");
        type Case<'a> = (
            Vec<(&'a str, &'a str)>,
            Option<&'a str>,
            Vec<&'a str>,
            usize,
        );
        let cases: Vec<Case> = vec![
            // One app container beside a public sidecar.
            (
                vec![("web", &web), ("proxy", "envoyproxy/envoy:v1")],
                Some("team/web"),
                vec!["web"],
                0,
            ),
            // Tags and digests of one repository are one repository.
            (
                vec![("web", &web), ("worker", &pinned)],
                Some("team/web"),
                vec!["web", "worker"],
                0,
            ),
            // Two repositories: the one most containers use, and a note about the other.
            (
                vec![("agent", &agent), ("web", &web), ("worker", &pinned)],
                Some("team/web"),
                vec!["web", "worker"],
                1,
            ),
            // A tie: the first.
            (
                vec![("agent", &agent), ("web", &web)],
                Some("ops/agent"),
                vec!["agent"],
                1,
            ),
            // Nothing from ECR: no repository, no containers, and a note saying what to do.
            (
                vec![("web", "nginx:1"), ("x", "ghcr.io/a/b:1")],
                None,
                vec![],
                1,
            ),
        ];
        for (containers, repository, chosen, notes) in cases {
            let p = plan(&pairs(&containers), by_name);
            assert_eq!(p.repository.as_deref(), repository, "{containers:?}");
            assert_eq!(p.containers, chosen, "{containers:?}");
            assert_eq!(p.notes.len(), notes, "{containers:?}: {:?}", p.notes);
        }
        let p = plan(
            &pairs(&[("agent", &agent), ("web", &web), ("w2", &web)]),
            by_name,
        );
        assert!(
            p.notes[0].contains("agent uses") && p.notes[0].contains("keeps its image"),
            "{:?}",
            p.notes
        );
        let p = plan(&pairs(&[("web", "nginx:1")]), by_name);
        assert!(p.notes[0].contains("web (nginx:1)"), "{:?}", p.notes);
        // What counts as ECR is the caller's: a registry known only from ECR's answer.
        let p = plan(&pairs(&[("app", "127.0.0.1:4566/web:v1")]), |r| {
            r.repository_uri() == "127.0.0.1:4566/web"
        });
        assert_eq!(p.repository.as_deref(), Some("web"));
        assert_eq!(p.containers, vec!["app"]);
    }

    fn described() -> Value {
        json!({
            "taskDefinition": {
                "taskDefinitionArn": "arn:aws:ecs:eu-west-1:123456789012:task-definition/web:3",
                "family": "web",
                "revision": 3,
                "status": "ACTIVE",
                "registeredAt": 1_700_000_000.5,
                "registeredBy": "arn:aws:iam::123456789012:user/x",
                "requiresAttributes": [{"name": "ecs.capability.execution-role-awslogs"}],
                "compatibilities": ["EC2", "FARGATE"],
                "networkMode": "awsvpc",
                "pidMode": null,
                "containerDefinitions": [{
                    "name": "web",
                    "image": format!("{ECR}/team/web:abc"),
                    "essential": true,
                    "environment": [
                        {"name": "RAILS_ENV", "value": "production"},
                        {"name": "DB_PASSWORD", "value": "hunter2hunter2"},
                        {"name": "DATABASE_URL", "value": "postgres://app:s3cr3tpw@db/x"},
                        {"name": "AUTH_ENABLED", "value": "true"}
                    ]
                }]
            },
            "tags": [
                {"key": "team", "value": "core"},
                {"key": "deckhand:sha", "value": "0123456789abcdef0123456789abcdef01234567"},
                {"key": "deckhand:previous", "value": "web:2"}
            ]
        })
    }

    #[test]
    fn the_file_is_register_input_with_the_tags_but_deckhands() {
        let td = task_definition(described()).unwrap();
        let text = task_definition_text(&td);
        assert!(text.ends_with("}\n") && !text.ends_with("\n\n"), "{text}");
        let file: Value = serde_json::from_str(&text).unwrap();
        for gone in [
            "taskDefinitionArn",
            "revision",
            "status",
            "registeredAt",
            "registeredBy",
            "requiresAttributes",
            "compatibilities",
            "pidMode",
            "taskDefinition",
        ] {
            assert!(file.get(gone).is_none(), "{gone}: {text}");
        }
        assert_eq!(file["family"], "web");
        assert_eq!(file["networkMode"], "awsvpc");
        assert_eq!(file["tags"], json!([{"key": "team", "value": "core"}]));
        // The file deploy reads back is the same definition, and the SDK's model knows it all.
        assert_eq!(taskdef::parse(&text).unwrap(), td);
        assert!(crate::deploy::shape::unknown_fields(&file).is_empty());
        // Keys in a stable order: the same input, the same bytes.
        assert_eq!(
            task_definition_text(&task_definition(described()).unwrap()),
            text
        );
        // With only deckhand's tags, none.
        let mut only_ours = described();
        only_ours["tags"] = json!([{"key": "deckhand:verified", "value": "1"}]);
        let file: Value =
            serde_json::from_str(&task_definition_text(&task_definition(only_ours).unwrap()))
                .unwrap();
        assert!(file.get("tags").is_none());
        assert!(task_definition(json!({"taskDefinition": {"family": "x"}})).is_err());
    }

    #[test]
    fn plaintext_secrets_are_named_by_container_and_variable() {
        let td = task_definition(described()).unwrap();
        assert_eq!(
            plaintext_secrets(&td),
            vec![
                ("web".to_string(), "DB_PASSWORD".to_string()),
                ("web".to_string(), "DATABASE_URL".to_string()),
            ]
        );
    }

    #[test]
    fn the_ecs_and_codedeploy_controllers_are_deployable() {
        for (controller, refused) in [
            ("", false),
            ("ECS", false),
            ("CODE_DEPLOY", false),
            ("EXTERNAL", true),
        ] {
            let why = unsupported_controller("web", controller, "nothing was written");
            assert_eq!(why.is_some(), refused, "{controller:?}");
            if let Some(why) = why {
                assert!(
                    why.contains(controller) && why.contains("service web"),
                    "{why}"
                );
                assert!(why.contains("nothing was written"), "{why}");
            }
        }
    }

    fn live() -> Live {
        Live {
            cluster: "production".into(),
            service: "web".into(),
            region: Some("eu-west-1".into()),
            revision: "web:3".into(),
        }
    }

    #[test]
    fn the_config_is_one_deckhand_reads_with_every_key_it_needs() {
        let p = Plan {
            repository: Some("team/web".into()),
            containers: vec!["web".into(), "worker".into()],
            notes: vec!["agent uses x, another ECR repository".into()],
        };
        let text = config_text(&live(), &p, TASK_DEFINITION_FILE);
        let file = crate::config::parse(&text, Path::new("deckhand.toml")).unwrap();
        assert_eq!(file.cluster.as_deref(), Some("production"));
        assert_eq!(file.region.as_deref(), Some("eu-west-1"));
        assert_eq!(file.repository.as_deref(), Some("team/web"));
        assert_eq!(
            file.task_definition.as_deref(),
            Some(Path::new(TASK_DEFINITION_FILE))
        );
        assert_eq!(file.timeout, Some(crate::settings::DEFAULT_TIMEOUT));
        assert_eq!(file.rollback, Some(crate::cli::RollbackMode::Auto));
        assert_eq!(file.services.len(), 1);
        assert_eq!(file.services[0].name, "web");
        assert_eq!(file.services[0].containers, vec!["web", "worker"]);
        assert!(text.contains("# agent uses x"), "{text}");
        assert!(text.contains("revision web:3"), "{text}");
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn without_an_ecr_image_the_config_says_what_to_fill_in() {
        let p = plan(&pairs(&[("web", "nginx:1")]), by_name);
        let text = config_text(&live(), &p, TASK_DEFINITION_FILE);
        let file = crate::config::parse(&text, Path::new("deckhand.toml")).unwrap();
        assert_eq!(file.repository, None);
        assert!(file.services[0].containers.is_empty());
        assert!(text.contains("# repository = "), "{text}");
        assert!(text.contains("# containers = "), "{text}");
        assert!(text.contains("no container's image is in ECR"), "{text}");
    }

    #[test]
    fn names_that_need_quoting_are_quoted() {
        let live = Live {
            cluster: "arn:aws:ecs:eu-west-1:123456789012:cluster/a\"b".into(),
            region: None,
            ..live()
        };
        let text = config_text(&live, &Plan::default(), "t.json");
        let file = crate::config::parse(&text, Path::new("deckhand.toml")).unwrap();
        assert_eq!(file.cluster.as_deref(), Some(live.cluster.as_str()));
        assert_eq!(file.region, None);
    }

    #[test]
    fn durations_are_written_as_deckhand_reads_them() {
        use std::time::Duration;
        assert_eq!(humane(Duration::from_secs(600)), "10m");
        assert_eq!(humane(Duration::from_secs(90)), "90s");
        assert_eq!(
            crate::cli::parse_duration(&humane(Duration::from_secs(90))),
            Ok(Duration::from_secs(90))
        );
    }
}
