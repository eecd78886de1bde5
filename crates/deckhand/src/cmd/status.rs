//! `deckhand status`: what a service runs (image, commit), how its deployments stand, and what
//! ECS said last; for a person at a terminal or a script reading JSON.

use serde::Serialize;
use serde_json::Value;

use crate::aws::{self, ecs};
use crate::deploy::verdict::DeploymentView;
use crate::deploy::watch;
use crate::error::Result;
use crate::image::reference::ImageRef;
use crate::settings::StatusSettings;

/// The status object (stdout with `--output json`).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Status {
    pub service: String,
    pub cluster: String,
    /// ACTIVE, DRAINING or INACTIVE.
    pub status: String,
    pub task_definition_arn: String,
    /// The commit deckhand deployed in this revision (its `deckhand:sha` tag).
    pub sha: Option<String>,
    pub desired: i32,
    pub running: i32,
    pub pending: i32,
    /// Whether a deployment is rolling out right now.
    pub deploying: bool,
    pub deployments: Vec<DeploymentView>,
    pub containers: Vec<Container>,
    /// Newest first.
    pub events: Vec<Event>,
    /// The service deployment still going, where ECS has the API: its stage and alarms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_deployment: Option<Current>,
    /// ECS, CODE_DEPLOY or EXTERNAL.
    pub deployment_controller: String,
    /// The task sets of a CODE_DEPLOY (or EXTERNAL) service: PRIMARY first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub task_sets: Vec<ecs::TaskSetView>,
}

/// The service deployment in progress, as `deckhand status` shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Current {
    pub arn: String,
    pub status: String,
    pub stage: Option<String>,
    pub strategy: Option<String>,
    /// The line `deckhand deploy` prints for it.
    pub summary: String,
    /// The alarms' status (MONITORING, TRIGGERED…) and those that went off.
    pub alarms: Option<String>,
    pub triggered_alarms: Vec<String>,
    /// A PAUSE hook awaiting action (`deckhand continue`).
    pub paused_hook: Option<String>,
}

impl Current {
    fn of(sd: &crate::aws::sdeploy::ServiceDeployment) -> Self {
        Current {
            arn: sd.arn.clone(),
            status: sd.status.clone(),
            stage: sd.stage.clone(),
            strategy: sd.strategy.clone(),
            summary: crate::deploy::verdict::describe_service_deployment(sd),
            alarms: sd.alarms.as_ref().map(|(s, _)| s.clone()),
            triggered_alarms: sd
                .alarms
                .as_ref()
                .map(|(_, t)| t.clone())
                .unwrap_or_default(),
            paused_hook: sd
                .hooks
                .iter()
                .find(|h| h.status == "AWAITING_ACTION")
                .map(|h| h.id.clone()),
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Container {
    pub name: String,
    pub image: String,
    /// The commit in the image's tag, when it is tagged by SHA.
    pub sha: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Event {
    /// RFC 3339, UTC.
    pub at: String,
    pub message: String,
}

/// Prints the status of one service.
pub async fn run(
    r: &crate::report::Reporter,
    region: Option<&str>,
    args: &StatusSettings,
) -> Result<()> {
    let service = &args.service;
    let cluster = args.cluster.as_str();
    let config = aws::config::load(region).await?;
    let client = ecs::Ecs::new(&config);
    let view = ecs::describe_service(&client, cluster, service).await?;
    let td = ecs::describe_task_definition(&client, &view.task_definition).await?;
    let mut status = assemble(service, cluster, &view, &td, args.events);
    status.service_deployment = crate::aws::sdeploy::current(&client, cluster, service)
        .await?
        .as_ref()
        .map(Current::of);
    r.result(&status, &text(&status));
    Ok(())
}

/// The status from DescribeServices and the live DescribeTaskDefinition output (pure).
pub fn assemble(
    service: &str,
    cluster: &str,
    view: &ecs::ServiceView,
    td: &Value,
    events: usize,
) -> Status {
    let tagged_sha = td["tags"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|t| t["key"] == "deckhand:sha")
        .and_then(|t| t["value"].as_str())
        .map(str::to_string);
    let containers = td["taskDefinition"]["containerDefinitions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            let image = c["image"].as_str().unwrap_or_default().to_string();
            Container {
                name: c["name"].as_str().unwrap_or_default().to_string(),
                sha: ImageRef::parse(&image)
                    .ok()
                    .and_then(|r| r.sha().map(str::to_string)),
                image,
            }
        })
        .collect();
    Status {
        service: service.to_string(),
        cluster: cluster.to_string(),
        status: view.status.clone(),
        task_definition_arn: view.task_definition.clone(),
        sha: tagged_sha,
        desired: view.desired,
        running: view.running,
        pending: view.pending,
        deploying: crate::deploy::verdict::busy(&view.deployments).is_some()
            || view.task_sets.len() > 1,
        deployments: view.deployments.clone(),
        containers,
        events: view
            .events
            .iter()
            .take(events)
            .map(|e| Event {
                at: rfc3339(e.at),
                message: e.message.clone(),
            })
            .collect(),
        service_deployment: None,
        deployment_controller: view.controller.clone(),
        task_sets: {
            let mut sets = view.task_sets.clone();
            sets.sort_by_key(|t| t.status != "PRIMARY");
            sets
        },
    }
}

fn rfc3339(epoch: f64) -> String {
    aws_smithy_types::DateTime::from_secs_f64(epoch)
        .fmt(aws_smithy_types::date_time::Format::DateTime)
        .unwrap_or_default()
}

/// The status for a person.
pub fn text(s: &Status) -> String {
    let mut out = format!(
        "service {} in {}: {}, {} running of {} desired{}\n",
        s.service,
        s.cluster,
        s.status,
        s.running,
        s.desired,
        if s.pending > 0 {
            format!(", {} pending", s.pending)
        } else {
            String::new()
        }
    );
    out.push_str(&format!(
        "task definition {}{}\n",
        s.task_definition_arn,
        s.sha
            .as_deref()
            .map(|h| format!(" (commit {h})"))
            .unwrap_or_default()
    ));
    for c in &s.containers {
        let sha = c
            .sha
            .as_deref()
            .map(|h| format!(" (commit {h})"))
            .unwrap_or_default();
        out.push_str(&format!("  container {}: {}{sha}\n", c.name, c.image));
    }
    // A CODE_DEPLOY service's deployments are its task sets.
    let rolling = if s.deploying {
        " (one is rolling out)"
    } else {
        ""
    };
    if !s.deployments.is_empty() || s.task_sets.is_empty() {
        out.push_str(&format!("deployments{rolling}:\n"));
    }
    for d in &s.deployments {
        out.push_str(&format!("  {}\n", watch::describe_deployment(d)));
    }
    if !s.task_sets.is_empty() {
        let rolling = if s.deployments.is_empty() && s.deploying {
            ", one is rolling out"
        } else {
            ""
        };
        out.push_str(&format!(
            "task sets ({} controller{rolling}):\n",
            s.deployment_controller
        ));
        for t in &s.task_sets {
            out.push_str(&format!(
                "  {} {} {}: {} running of {} desired\n",
                t.status,
                t.id,
                watch::short(&t.task_definition),
                t.running,
                t.desired
            ));
        }
    }
    if let Some(c) = &s.service_deployment {
        out.push_str(&format!("{}\n  {}\n", c.summary, c.arn));
        if let Some(alarms) = &c.alarms {
            out.push_str(&format!("  alarms {alarms}"));
            if !c.triggered_alarms.is_empty() {
                out.push_str(&format!(": {} went off", c.triggered_alarms.join(", ")));
            }
            out.push('\n');
        }
        if let Some(hook) = &c.paused_hook {
            out.push_str(&format!(
                "  paused at hook {hook}: `deckhand continue --cluster {} --service {}` (or \
                 --rollback)\n",
                s.cluster, s.service
            ));
        }
    }
    if !s.events.is_empty() {
        out.push_str("recent events (newest first):\n");
        for e in &s.events {
            out.push_str(&format!("  {} {}\n", e.at, e.message));
        }
    }
    out.trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn status_names_the_image_the_commit_and_the_deployments() {
        let sha = "0123456789abcdef0123456789abcdef01234567";
        let view = ecs::ServiceView {
            name: "web".into(),
            placement: Default::default(),
            strategy: None,
            controller: "ECS".into(),
            load_balancers: Vec::new(),
            task_sets: Vec::new(),
            arn: "arn:svc".into(),
            status: "ACTIVE".into(),
            task_definition: "arn:td/web:3".into(),
            desired: 2,
            running: 1,
            pending: 1,
            deployments: vec![DeploymentView {
                id: "ecs-svc/1".into(),
                status: "PRIMARY".into(),
                task_definition: "arn:td/web:3".into(),
                rollout_state: Some("IN_PROGRESS".into()),
                rollout_reason: None,
                desired: 2,
                running: 1,
                pending: 1,
                failed: 0,
            }],
            events: (0..8)
                .map(|i| ecs::Event {
                    id: format!("e{i}"),
                    at: 1_700_000_000.0 + f64::from(i),
                    message: format!("event {i}"),
                })
                .collect(),
        };
        let td = json!({
            "taskDefinition": {"containerDefinitions": [
                {"name": "app", "image": "repo/web@sha256:abc"},
                {"name": "proxy", "image": "envoy:v1"},
                {"name": "job", "image": format!("repo/job:{sha}")}
            ]},
            "tags": [{"key": "deckhand:sha", "value": "feedface"}]
        });
        let s = assemble("web", "prod", &view, &td, 3);
        assert!(s.deploying);
        assert_eq!(s.events.len(), 3);
        assert_eq!(s.events[0].at, "2023-11-14T22:13:20Z");
        let shas: Vec<_> = s.containers.iter().map(|c| c.sha.as_deref()).collect();
        assert_eq!(shas, vec![None, None, Some(sha)]);
        assert_eq!(s.sha.as_deref(), Some("feedface"));
        let t = text(&s);
        assert!(
            t.contains("service web in prod: ACTIVE, 1 running of 2 desired, 1 pending"),
            "{t}"
        );
        assert!(
            t.contains("task definition arn:td/web:3 (commit feedface)"),
            "{t}"
        );
        assert!(t.contains("container app: repo/web@sha256:abc\n"), "{t}");
        assert!(
            t.contains("PRIMARY ecs-svc/1 web:3 IN_PROGRESS, 1 of 2 running, 1 pending"),
            "{t}"
        );
        assert!(t.contains("deployments (one is rolling out):\n"), "{t}");

        // A CODE_DEPLOY service: no ECS deployments, its task sets instead.
        let code_deploy = ecs::ServiceView {
            controller: "CODE_DEPLOY".into(),
            deployments: Vec::new(),
            task_sets: vec![
                ecs::TaskSetView {
                    id: "ecs-svc/2".into(),
                    status: "ACTIVE".into(),
                    task_definition: "arn:td/web:4".into(),
                    desired: 2,
                    running: 0,
                    pending: 2,
                },
                ecs::TaskSetView {
                    id: "ecs-svc/1".into(),
                    status: "PRIMARY".into(),
                    task_definition: "arn:td/web:3".into(),
                    desired: 2,
                    running: 2,
                    pending: 0,
                },
            ],
            ..view
        };
        let t = text(&assemble("web", "prod", &code_deploy, &td, 3));
        assert!(!t.contains("deployments"), "{t}");
        assert!(
            t.contains(
                "task sets (CODE_DEPLOY controller, one is rolling out):\n  PRIMARY ecs-svc/1 \
                 web:3: 2 running of 2 desired\n  ACTIVE ecs-svc/2 web:4"
            ),
            "{t}"
        );
    }
}
