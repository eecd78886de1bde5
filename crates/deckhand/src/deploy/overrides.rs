//! What `deckhand run` changes in a task without registering a revision (pure): the command
//! and `[CONTAINER:]KEY=VALUE` variables, each on the container it is for, and which container
//! that is by default.

use crate::aws::ecs::ContainerOverride;

/// One `--env [CONTAINER:]KEY=VALUE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvVar {
    /// The container it is for; `None`: the one that runs the command.
    pub container: Option<String>,
    pub name: String,
    pub value: String,
}

/// Parses `[CONTAINER:]KEY=VALUE`: the part before the first `:` names a container only when
/// that `:` comes before the first `=` (so `URL=http://x` is one variable). The value may be
/// empty; the key and a named container may not.
pub fn parse_env(raw: &str) -> Result<EnvVar, String> {
    let Some((left, value)) = raw.split_once('=') else {
        return Err(format!(
            "--env {raw:?}: expected KEY=VALUE or CONTAINER:KEY=VALUE"
        ));
    };
    let (container, name) = match left.split_once(':') {
        Some((container, name)) => (Some(container), name),
        None => (None, left),
    };
    if container.is_some_and(|c| c.trim().is_empty()) {
        return Err(format!(
            "--env {raw:?}: the container before `:` is empty; give CONTAINER:KEY=VALUE or KEY=VALUE"
        ));
    }
    if name.trim().is_empty() || name.chars().any(char::is_whitespace) {
        return Err(format!(
            "--env {raw:?}: the variable's name is empty or has spaces"
        ));
    }
    Ok(EnvVar {
        container: container.map(str::to_string),
        name: name.to_string(),
        value: value.to_string(),
    })
}

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
    env: &[EnvVar],
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
                var.name,
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
        environment.retain(|(k, _)| *k != var.name);
        environment.push((var.name.clone(), var.value.clone()));
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

    fn var(container: Option<&str>, name: &str, value: &str) -> EnvVar {
        EnvVar {
            container: container.map(str::to_string),
            name: name.into(),
            value: value.into(),
        }
    }

    #[test]
    fn env_is_key_value_with_an_optional_container_before_the_first_equals() {
        let cases = [
            ("KEY=V", Ok(var(None, "KEY", "V"))),
            ("KEY=", Ok(var(None, "KEY", ""))),
            ("app:KEY=V", Ok(var(Some("app"), "KEY", "V"))),
            ("URL=http://x:1/a", Ok(var(None, "URL", "http://x:1/a"))),
            ("app:URL=a=b:c", Ok(var(Some("app"), "URL", "a=b:c"))),
            ("KEY", Err("expected KEY=VALUE")),
            ("=V", Err("name is empty")),
            ("app:=V", Err("name is empty")),
            (":KEY=V", Err("container before `:` is empty")),
            ("MY KEY=V", Err("has spaces")),
        ];
        for (raw, want) in cases {
            match (parse_env(raw), want) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{raw}"),
                (Err(got), Err(want)) => assert!(got.contains(want), "{raw}: {got}"),
                (got, want) => panic!("{raw}: got {got:?}, want {want:?}"),
            }
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
