//! What `deckhand run` changes in a task without registering a revision (pure): the command
//! and `[CONTAINER:]KEY=VALUE` variables, each on the container it is for, and which container
//! that is by default.

use super::render::Assignment;
use crate::aws::ecs::ContainerOverride;

/// The container that runs the command and gets unprefixed variables (pure): the first named
/// with `--container`, else the first that got the image, else the first essential one, else
/// the first. `containers` are (name, essential) in the task definition's order.
pub fn main_container(
    containers: &[(String, bool)],
    named: &[String],
    got_image: &[String],
) -> Option<String> {
    named
        .first()
        .or(got_image.first())
        .or(containers.iter().find(|(_, e)| *e).map(|(n, _)| n))
        .or(containers.first().map(|(n, _)| n))
        .cloned()
}

/// RunTask's container overrides (pure): `command` on `main`, each variable on its container
/// (one override per container, `main` first). A variable for a container the task definition
/// lacks is an error naming the ones it has.
pub fn plan(
    containers: &[(String, bool)],
    main: &str,
    command: Option<&[String]>,
    env: &[Assignment],
) -> Result<Vec<ContainerOverride>, String> {
    let mut out = vec![ContainerOverride {
        container: main.to_string(),
        command: command.map(<[String]>::to_vec),
        environment: Vec::new(),
    }];
    for var in env {
        let target = var.container.as_deref().unwrap_or(main);
        if !containers.iter().any(|(n, _)| n == target) {
            let names: Vec<&str> = containers.iter().map(|(n, _)| n.as_str()).collect();
            return Err(format!(
                "--env {}:{}=…: the task definition has no container {target:?}; it has: {}",
                target,
                var.key,
                names.join(", ")
            ));
        }
        let at = match out.iter().position(|o| o.container == target) {
            Some(i) => i,
            None => {
                out.push(ContainerOverride {
                    container: target.to_string(),
                    ..Default::default()
                });
                out.len() - 1
            }
        };
        let environment = &mut out[at].environment;
        environment.retain(|(k, _)| *k != var.key);
        environment.push((var.key.clone(), var.value.clone()));
    }
    out.retain(|o| o.command.is_some() || !o.environment.is_empty());
    Ok(out)
}

/// Why task definition `body` cannot run without a service's network configuration, if it
/// cannot (pure): awsvpc networking (Fargate's only mode) needs subnets that RunTask is given.
pub fn needs_network(body: &serde_json::Value) -> Option<String> {
    let family = body["family"].as_str().unwrap_or_default();
    let fargate = body["requiresCompatibilities"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c == "FARGATE");
    let awsvpc = body["networkMode"] == "awsvpc";
    (awsvpc || fargate).then(|| {
        format!(
            "the task definition {family} uses {}: RunTask needs its subnets and security \
             groups. Add --service SERVICE to run it with that service's network configuration",
            if awsvpc {
                "awsvpc networking"
            } else {
                "Fargate"
            }
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn var(container: Option<&str>, name: &str, value: &str) -> Assignment {
        Assignment {
            container: container.map(str::to_string),
            key: name.into(),
            value: value.into(),
        }
    }

    fn containers() -> Vec<(String, bool)> {
        vec![("proxy".into(), false), ("app".into(), true)]
    }

    #[test]
    fn the_main_container_is_named_or_got_the_image_or_is_essential() {
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let cases: [(&[&str], &[&str], Option<&str>); 4] = [
            (&["proxy"], &["app"], Some("proxy")),
            (&[], &["proxy"], Some("proxy")),
            (&[], &[], Some("app")),
            (&["x"], &[], Some("x")),
        ];
        for (named, got, want) in cases {
            assert_eq!(
                main_container(&containers(), &names(named), &names(got)).as_deref(),
                want,
                "{named:?} {got:?}"
            );
        }
        let none_essential = vec![("a".to_string(), false), ("b".to_string(), false)];
        assert_eq!(
            main_container(&none_essential, &[], &[]).as_deref(),
            Some("a")
        );
        assert_eq!(main_container(&[], &[], &[]), None);
    }

    #[test]
    fn overrides_go_to_their_containers_once_each() {
        let command = vec!["sh".to_string(), "-c".to_string(), "echo hi".to_string()];
        let env = [
            var(None, "A", "1"),
            var(Some("proxy"), "B", "2"),
            var(None, "A", "3"),
        ];
        let got = plan(&containers(), "app", Some(&command), &env).unwrap();
        assert_eq!(
            got,
            vec![
                ContainerOverride {
                    container: "app".into(),
                    command: Some(command.clone()),
                    environment: vec![("A".into(), "3".into())],
                },
                ContainerOverride {
                    container: "proxy".into(),
                    command: None,
                    environment: vec![("B".into(), "2".into())],
                },
            ]
        );
        assert_eq!(plan(&containers(), "app", None, &[]).unwrap(), vec![]);
        let err = plan(&containers(), "app", None, &[var(Some("db"), "X", "1")]).unwrap_err();
        assert!(
            err.contains("no container \"db\"") && err.contains("proxy, app"),
            "{err}"
        );
    }

    #[test]
    fn awsvpc_and_fargate_need_a_services_network() {
        assert_eq!(needs_network(&json!({"family": "web"})), None);
        assert_eq!(
            needs_network(&json!({"family": "web", "networkMode": "bridge"})),
            None
        );
        let why = needs_network(&json!({"family": "web", "networkMode": "awsvpc"})).unwrap();
        assert!(why.contains("awsvpc") && why.contains("--service"), "{why}");
        let why = needs_network(&json!({"family": "web", "requiresCompatibilities": ["FARGATE"]}))
            .unwrap();
        assert!(why.contains("Fargate"), "{why}");
    }
}
