//! A failed task explained in the application's own words: where each container logs (from
//! its task definition) and the last lines of its essential containers' CloudWatch streams.

use serde::Serialize;
use serde_json::Value;

use crate::aws;
use crate::report::Event;

/// Where one container's output goes, as its task definition says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The awslogs driver: a stream `<prefix>/<container>/<task id>` in `group` (ECS names it
    /// so only with a prefix), in `region` when not the client's.
    CloudWatch {
        group: String,
        prefix: Option<String>,
        region: Option<String>,
    },
    /// Another log driver (FireLens, splunk, json-file…), or none at all.
    Elsewhere { driver: Option<String> },
}

/// One container of a task definition: its name, whether it is essential (ECS's default),
/// and where it logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    pub name: String,
    pub essential: bool,
    pub source: Source,
}

/// The containers of a task definition `body` and where they log (pure).
pub fn containers(body: &Value) -> Vec<Container> {
    body["containerDefinitions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| {
            let name = c["name"].as_str()?.to_string();
            let logs = &c["logConfiguration"];
            let option = |k: &str| logs["options"][k].as_str().map(str::to_string);
            let driver = logs["logDriver"].as_str();
            let source = match (driver, option("awslogs-group")) {
                (Some("awslogs"), Some(group)) => Source::CloudWatch {
                    group,
                    prefix: option("awslogs-stream-prefix"),
                    region: option("awslogs-region"),
                },
                _ => Source::Elsewhere {
                    driver: driver.map(str::to_string),
                },
            };
            Some(Container {
                name,
                essential: c["essential"].as_bool().unwrap_or(true),
                source,
            })
        })
        .collect()
}

/// The stream ECS writes `container` of task `task_id` to, under `prefix`.
pub fn stream(prefix: &str, container: &str, task_id: &str) -> String {
    format!("{prefix}/{container}/{task_id}")
}

/// What was learned of one container's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContainerLog {
    pub container: String,
    /// Its last lines, oldest first (masked when shown or written).
    pub lines: Vec<String>,
    /// Why there are no lines, when there are none ("logs not in CloudWatch …"); else empty.
    pub note: String,
}

/// Why a container's lines cannot be read from CloudWatch, if they cannot (pure).
pub fn unreadable(source: &Source) -> Option<String> {
    match source {
        Source::Elsewhere { driver: Some(d) } => {
            Some(format!("logs not in CloudWatch (log driver {d})"))
        }
        Source::Elsewhere { driver: None } => {
            Some("logs not in CloudWatch (no log configuration)".to_string())
        }
        Source::CloudWatch {
            group,
            prefix: None,
            ..
        } => Some(format!(
            "logs in CloudWatch group {group}, under a stream deckhand cannot name (set \
             awslogs-stream-prefix to have them shown)"
        )),
        Source::CloudWatch { .. } => None,
    }
}

/// The events that show `logs`, of failed task `task` (labelled `label`, a service or the
/// pre-deploy task, when named): one a container, in the task definition's order (pure).
pub fn events(label: Option<&str>, task: &str, logs: &[ContainerLog]) -> Vec<Event> {
    logs.iter()
        .map(|c| Event::TaskLog {
            service: label.map(str::to_string),
            task: task.to_string(),
            container: c.container.clone(),
            lines: c.lines.clone(),
            note: c.note.clone(),
        })
        .collect()
}

/// The last `count` lines of each essential container of stopped task `task_id`, read with
/// `logs` (a client for another region is made from it when a container logs there).
pub async fn last_lines(
    logs: &aws_sdk_cloudwatchlogs::Client,
    containers: &[Container],
    task_id: &str,
    count: usize,
) -> Vec<ContainerLog> {
    let mut out = Vec::new();
    for c in containers.iter().filter(|c| c.essential) {
        let log = |lines: Vec<String>, note: String| ContainerLog {
            container: c.name.clone(),
            lines,
            note,
        };
        if let Some(note) = unreadable(&c.source) {
            out.push(log(Vec::new(), note));
            continue;
        }
        let Source::CloudWatch {
            group,
            prefix: Some(prefix),
            region,
        } = &c.source
        else {
            continue;
        };
        let name = stream(prefix, &c.name, task_id);
        let elsewhere = region
            .as_deref()
            .filter(|r| logs.config().region().map(|x| x.as_ref()) != Some(*r))
            .map(|r| {
                aws_sdk_cloudwatchlogs::Client::from_conf(
                    logs.config()
                        .to_builder()
                        .region(aws_sdk_cloudwatchlogs::config::Region::new(r.to_string()))
                        .build(),
                )
            });
        let client = elsewhere.as_ref().unwrap_or(logs);
        out.push(
            match aws::logs::last_lines(client, group, &name, count).await {
                Ok(Some(lines)) if !lines.is_empty() => log(lines, String::new()),
                Ok(_) => log(Vec::new(), format!("no log lines in {group} {name}")),
                Err(e) => log(Vec::new(), format!("could not read its log: {e}")),
            },
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn containers_log_where_their_task_definition_says() {
        let body = json!({"containerDefinitions": [
            {"name": "app", "logConfiguration": {"logDriver": "awslogs", "options": {
                "awslogs-group": "/ecs/app", "awslogs-stream-prefix": "web",
                "awslogs-region": "eu-west-1"}}},
            {"name": "router", "essential": true, "logConfiguration": {"logDriver": "awsfirelens"}},
            {"name": "bare", "logConfiguration": {"logDriver": "awslogs",
                "options": {"awslogs-group": "/ecs/bare"}}},
            {"name": "sidecar", "essential": false},
            {"essential": true}
        ]});
        let got = containers(&body);
        let notes: Vec<(&str, bool, Option<String>)> = got
            .iter()
            .map(|c| (c.name.as_str(), c.essential, unreadable(&c.source)))
            .collect();
        assert_eq!(
            notes,
            vec![
                ("app", true, None),
                (
                    "router",
                    true,
                    Some("logs not in CloudWatch (log driver awsfirelens)".into())
                ),
                (
                    "bare",
                    true,
                    Some(
                        "logs in CloudWatch group /ecs/bare, under a stream deckhand cannot \
                         name (set awslogs-stream-prefix to have them shown)"
                            .into()
                    )
                ),
                (
                    "sidecar",
                    false,
                    Some("logs not in CloudWatch (no log configuration)".into())
                ),
            ]
        );
        assert_eq!(
            got[0].source,
            Source::CloudWatch {
                group: "/ecs/app".into(),
                prefix: Some("web".into()),
                region: Some("eu-west-1".into()),
            }
        );
        assert_eq!(stream("web", "app", "abc"), "web/app/abc");
    }

    #[test]
    fn each_containers_log_is_one_event_under_its_label() {
        let logs = [
            ContainerLog {
                container: "app".into(),
                lines: vec!["boom".into()],
                note: String::new(),
            },
            ContainerLog {
                container: "proxy".into(),
                lines: Vec::new(),
                note: "logs not in CloudWatch (log driver json-file)".into(),
            },
        ];
        for (label, heading) in [
            (None, "task abc, container app: last 1 log line"),
            (
                Some("pre-deploy migrate"),
                "pre-deploy migrate: task abc, container app: last 1 log line",
            ),
        ] {
            let got = events(label, "abc", &logs);
            assert_eq!(got.len(), 2, "{label:?}");
            assert_eq!(got[0].log_heading().as_deref(), Some(heading));
            assert_eq!(
                got[1].message(),
                "  proxy: logs not in CloudWatch (log driver json-file)"
            );
        }
        assert!(events(None, "abc", &[]).is_empty());
    }
}
