//! How a CodeDeploy blue/green deployment is judged and told, as pure decisions: which
//! deployment group is the service's, the verdict from GetDeployment and the ECS target, and
//! the lines a poll prints when something changed.

use crate::aws::codedeploy::{Deployment, Group, Target};

/// Where a CodeDeploy deployment stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Judged {
    Pending,
    /// Waiting (status Ready) for ContinueDeployment before production traffic is re-routed.
    Ready,
    Succeeded,
    /// The `--wait-until` event succeeded; the deployment goes on.
    Reached(String),
    /// Failed or Stopped: why, and CodeDeploy's rollback deployment when it started one.
    Over {
        why: String,
        stopped: bool,
        rolled_back_by: Option<String>,
    },
}

/// The verdict on one look at a deployment and its ECS target.
pub fn judge(d: &Deployment, target: Option<&Target>, wait_until: Option<&str>) -> Judged {
    match d.status.as_str() {
        "Succeeded" => Judged::Succeeded,
        "Failed" | "Stopped" => Judged::Over {
            why: why(d, target),
            stopped: d.status == "Stopped",
            rolled_back_by: d.rolled_back_by.clone(),
        },
        status => {
            if let (Some(until), Some(t)) = (wait_until, target) {
                let reached = t.events.iter().any(|e| {
                    e.name == until && matches!(e.status.as_str(), "Succeeded" | "Skipped")
                });
                if reached {
                    return Judged::Reached(until.to_string());
                }
            }
            if status == "Ready" {
                Judged::Ready
            } else {
                Judged::Pending
            }
        }
    }
}

/// Why a deployment failed or stopped, in words: the failed hook, the alarm, the stop.
pub fn why(d: &Deployment, target: Option<&Target>) -> String {
    let failed_event = target.and_then(|t| t.events.iter().find(|e| e.status == "Failed"));
    let (code, message) = d
        .error
        .clone()
        .unwrap_or_else(|| (String::new(), String::new()));
    let message = message.trim().trim_end_matches('.').to_string();
    let detail = |fallback: &str| {
        if message.is_empty() {
            fallback.to_string()
        } else {
            message.clone()
        }
    };
    let event_detail = failed_event
        .and_then(|e| e.diagnostics.as_ref())
        .map(|(_, m)| m.trim().trim_end_matches('.').to_string())
        .filter(|m| !m.is_empty());
    match code.as_str() {
        "HOOK_EXECUTION_FAILURE" => match failed_event {
            Some(e) => format!(
                "CodeDeploy's {} hook failed: {}",
                e.name,
                event_detail.unwrap_or_else(|| detail("the hook reported Failed"))
            ),
            None => format!("a CodeDeploy hook failed: {}", detail("no detail given")),
        },
        "ALARM_ACTIVE" => format!("a CloudWatch alarm went off: {}", detail("ALARM")),
        "MANUAL_STOP" => format!("the deployment was stopped: {}", detail("by request")),
        "TIMEOUT" => format!("CodeDeploy timed out: {}", detail("no detail given")),
        "" if d.status == "Stopped" => "the deployment was stopped".to_string(),
        "" => match failed_event {
            Some(e) => format!(
                "CodeDeploy's {} failed{}",
                e.name,
                event_detail.map(|m| format!(": {m}")).unwrap_or_default()
            ),
            None => format!("CodeDeploy reports the deployment {}", d.status),
        },
        code => match failed_event {
            Some(e) => format!(
                "{} failed ({code}): {}",
                e.name,
                event_detail.unwrap_or_else(|| detail("no detail given"))
            ),
            None => format!("CodeDeploy {code}: {}", detail("no detail given")),
        },
    }
}

/// What a poll prints about a deployment's ECS target that the previous look did not show:
/// each lifecycle event whose status changed, and the traffic when it shifted. `name` says
/// which task definition a task set runs, where known.
pub fn news(
    before: Option<&Target>,
    now: &Target,
    name: &dyn Fn(&str) -> Option<String>,
) -> Vec<String> {
    let mut lines = Vec::new();
    for e in &now.events {
        let was = before.and_then(|b| b.events.iter().find(|o| o.name == e.name));
        let fresh = match was {
            Some(o) => o.status != e.status,
            None => e.status != "Pending",
        };
        if !fresh {
            continue;
        }
        let detail = e
            .diagnostics
            .as_ref()
            .map(|(_, m)| m.trim())
            .filter(|m| !m.is_empty() && e.status == "Failed")
            .map(|m| format!(": {m}"))
            .unwrap_or_default();
        lines.push(format!("{} {}{detail}", e.name, e.status));
    }
    let traffic = traffic(now, name);
    if !traffic.is_empty() && before.map(|b| self::traffic(b, name)) != Some(traffic.clone()) {
        lines.push(format!("traffic: {traffic}"));
    }
    lines
}

/// The production traffic split between the task sets: "blue web:1 90%, green web:2 10%".
pub fn traffic(t: &Target, name: &dyn Fn(&str) -> Option<String>) -> String {
    let mut sets: Vec<&crate::aws::codedeploy::TaskSet> = t.task_sets.iter().collect();
    // Blue (the original) first.
    sets.sort_by_key(|s| s.label != "Blue");
    sets.iter()
        .map(|s| {
            let label = s.label.to_ascii_lowercase();
            let label = if label.is_empty() {
                "task set".to_string()
            } else {
                label
            };
            let td = name(&s.id).map(|n| format!(" {n}")).unwrap_or_default();
            format!("{label}{td} {}%", s.traffic.round())
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The id of the replacement (Green) task set, once CodeDeploy made it.
pub fn replacement(t: &Target) -> Option<&str> {
    t.task_sets
        .iter()
        .find(|s| s.label == "Green")
        .map(|s| s.id.as_str())
        .filter(|id| !id.is_empty())
}

/// The revisions of a deployment's replacement (Green) and original (Blue) task sets, found
/// by id among the service's task sets (pure); `None` for one not found.
pub fn labelled_revisions(
    t: &Target,
    view: &crate::aws::ecs::ServiceView,
) -> (Option<String>, Option<String>) {
    let of = |label: &str| {
        let set = t.task_sets.iter().find(|s| s.label == label)?;
        view.task_sets
            .iter()
            .find(|v| v.id == set.id || v.id.rsplit('/').next() == Some(set.id.as_str()))
            .map(|v| v.task_definition.clone())
    };
    (of("Green"), of("Blue"))
}

/// The name part of a cluster or service given by name or ARN.
fn name_of(s: &str) -> &str {
    super::watch::short(s)
}

/// The deployment group whose ECS service is `cluster`/`service`: exactly one, else why not.
pub fn pick_group(groups: &[Group], cluster: &str, service: &str) -> Result<Group, String> {
    let found: Vec<&Group> = groups
        .iter()
        .filter(|g| group_deploys(g, cluster, service))
        .collect();
    let (cluster, service) = (name_of(cluster), name_of(service));
    match found.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(format!(
            "no CodeDeploy deployment group deploys service {service} in cluster {cluster} (in \
             this account and region). Create one, or name it with --codedeploy-application and \
             --codedeploy-deployment-group"
        )),
        many => Err(format!(
            "{} CodeDeploy deployment groups deploy service {service} in cluster {cluster}: {}. \
             Name the one to use with --codedeploy-application and --codedeploy-deployment-group",
            many.len(),
            many.iter()
                .map(|g| format!("{}/{}", g.application, g.name))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// [`pick_group`] among the groups of application `app` and named `name`, where given (one of
/// the two, the other found): a name that matches no group is said to match none.
pub fn pick_named(
    groups: &[Group],
    app: Option<&str>,
    name: Option<&str>,
    cluster: &str,
    service: &str,
) -> Result<Group, String> {
    let kept: Vec<Group> = groups
        .iter()
        .filter(|g| app.is_none_or(|a| g.application == a) && name.is_none_or(|n| g.name == n))
        .cloned()
        .collect();
    let given = match (app, name) {
        (Some(a), None) => format!("CodeDeploy application {a}"),
        (None, Some(n)) => format!("deployment group {n}"),
        _ => return pick_group(&kept, cluster, service),
    };
    if kept.is_empty() {
        return Err(format!(
            "no CodeDeploy deployment group matches {given} (in this account and region): \
             check the name (--codedeploy-application, --codedeploy-deployment-group or \
             deckhand.toml's codedeploy tables), or leave it out to find the group from the \
             service"
        ));
    }
    pick_group(&kept, cluster, service).map_err(|e| {
        let (cluster, service) = (name_of(cluster), name_of(service));
        if kept.iter().any(|g| group_deploys(g, cluster, service)) {
            format!("{given}: {e}")
        } else {
            format!(
                "{given}: its groups ({}) deploy other services, not service {service} in \
                 cluster {cluster}: name the right one, or leave it out to find the group from \
                 the service",
                kept.iter()
                    .map(|g| format!("{}/{}", g.application, g.name))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    })
}

/// Whether a named group deploys `cluster`/`service` (a group of another service is refused).
pub fn group_deploys(g: &Group, cluster: &str, service: &str) -> bool {
    let (cluster, service) = (name_of(cluster), name_of(service));
    g.services
        .iter()
        .any(|(c, s)| name_of(c) == cluster && name_of(s) == service)
}

/// Another deployment than ours among the group's active ones.
pub fn other<'a>(active: &'a [String], ours: &str) -> Option<&'a str> {
    active.iter().map(String::as_str).find(|id| *id != ours)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::codedeploy::{LifecycleEvent, TaskSet};

    fn dep(status: &str, error: Option<(&str, &str)>) -> Deployment {
        Deployment {
            id: "d-1".into(),
            status: status.into(),
            error: error.map(|(c, m)| (c.into(), m.into())),
            ..Deployment::default()
        }
    }

    fn event(name: &str, status: &str, diag: Option<&str>) -> LifecycleEvent {
        LifecycleEvent {
            name: name.into(),
            status: status.into(),
            diagnostics: diag.map(|m| ("ScriptFailed".into(), m.into())),
        }
    }

    fn set(label: &str, id: &str, traffic: f64) -> TaskSet {
        TaskSet {
            id: id.into(),
            label: label.into(),
            traffic,
            ..TaskSet::default()
        }
    }

    fn service_sets(sets: &[(&str, &str, &str)]) -> crate::aws::ecs::ServiceView {
        crate::aws::ecs::ServiceView {
            task_sets: sets
                .iter()
                .map(|(id, status, td)| crate::aws::ecs::TaskSetView {
                    id: id.to_string(),
                    status: status.to_string(),
                    task_definition: td.to_string(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn the_replacement_and_the_original_are_told_by_their_labels_not_by_primary() {
        let t = Target {
            task_sets: vec![
                set("Blue", "ecs-svc/1", 0.0),
                set("Green", "ecs-svc/2", 100.0),
            ],
            ..Target::default()
        };
        // Traffic has moved: the replacement is PRIMARY, yet still Green.
        let moved = service_sets(&[
            ("ecs-svc/2", "PRIMARY", "web:4"),
            ("ecs-svc/1", "ACTIVE", "web:3"),
        ]);
        assert_eq!(
            labelled_revisions(&t, &moved),
            (Some("web:4".into()), Some("web:3".into()))
        );
        let gone = service_sets(&[("ecs-svc/1", "PRIMARY", "web:3")]);
        assert_eq!(labelled_revisions(&t, &gone), (None, Some("web:3".into())));
        assert_eq!(labelled_revisions(&Target::default(), &moved), (None, None));
    }

    #[test]
    fn verdicts_follow_the_status_the_wait_and_the_rollback() {
        let target = Target {
            status: "InProgress".into(),
            events: vec![
                event("Install", "Succeeded", None),
                event("AfterAllowTestTraffic", "Succeeded", None),
                event("AllowTraffic", "Pending", None),
            ],
            task_sets: vec![],
        };
        let cases: Vec<(Deployment, Option<&str>, Judged)> = vec![
            (dep("InProgress", None), None, Judged::Pending),
            (dep("Created", None), Some("AllowTraffic"), Judged::Pending),
            (dep("Ready", None), None, Judged::Ready),
            (
                dep("InProgress", None),
                Some("AfterAllowTestTraffic"),
                Judged::Reached("AfterAllowTestTraffic".into()),
            ),
            (
                dep("Succeeded", None),
                Some("AllowTraffic"),
                Judged::Succeeded,
            ),
            (
                Deployment {
                    rolled_back_by: Some("d-2".into()),
                    ..dep("Stopped", Some(("MANUAL_STOP", "Stopped by user.")))
                },
                None,
                Judged::Over {
                    why: "the deployment was stopped: Stopped by user".into(),
                    stopped: true,
                    rolled_back_by: Some("d-2".into()),
                },
            ),
            (
                dep(
                    "Failed",
                    Some(("ALARM_ACTIVE", "alarm latency is in ALARM")),
                ),
                None,
                Judged::Over {
                    why: "a CloudWatch alarm went off: alarm latency is in ALARM".into(),
                    stopped: false,
                    rolled_back_by: None,
                },
            ),
        ];
        for (d, until, want) in cases {
            assert_eq!(judge(&d, Some(&target), until), want, "{d:?} {until:?}");
        }
    }

    #[test]
    fn a_failure_is_explained_by_its_hook_or_event() {
        let hook = Target {
            events: vec![
                event("BeforeInstall", "Succeeded", None),
                event(
                    "AfterAllowTestTraffic",
                    "Failed",
                    Some("smoke test: 502 from /health"),
                ),
            ],
            ..Target::default()
        };
        let d = dep("Failed", Some(("HOOK_EXECUTION_FAILURE", "A hook failed.")));
        assert_eq!(
            why(&d, Some(&hook)),
            "CodeDeploy's AfterAllowTestTraffic hook failed: smoke test: 502 from /health"
        );
        assert_eq!(why(&d, None), "a CodeDeploy hook failed: A hook failed");
        let install = Target {
            events: vec![event("Install", "Failed", Some("tasks failed to start"))],
            ..Target::default()
        };
        let d = dep(
            "Failed",
            Some(("ECS_UPDATE_ERROR", "The ECS service cannot be updated.")),
        );
        assert_eq!(
            why(&d, Some(&install)),
            "Install failed (ECS_UPDATE_ERROR): tasks failed to start"
        );
        assert_eq!(
            why(&dep("Stopped", None), None),
            "the deployment was stopped"
        );
        assert_eq!(
            why(&dep("Failed", None), None),
            "CodeDeploy reports the deployment Failed"
        );
    }

    #[test]
    fn a_poll_tells_changed_events_and_shifted_traffic_once() {
        let names = |id: &str| match id {
            "ts-1" => Some("web:1".to_string()),
            "ts-2" => Some("web:2".to_string()),
            _ => None,
        };
        let first = Target {
            events: vec![
                event("BeforeInstall", "Succeeded", None),
                event("Install", "InProgress", None),
                event("AllowTraffic", "Pending", None),
            ],
            task_sets: vec![set("Blue", "ts-1", 100.0), set("Green", "ts-2", 0.0)],
            ..Target::default()
        };
        assert_eq!(
            news(None, &first, &names),
            vec![
                "BeforeInstall Succeeded",
                "Install InProgress",
                "traffic: blue web:1 100%, green web:2 0%"
            ]
        );
        assert!(news(Some(&first), &first, &names).is_empty());
        let canary = Target {
            events: vec![
                event("BeforeInstall", "Succeeded", None),
                event("Install", "Succeeded", None),
                event("AllowTraffic", "InProgress", None),
            ],
            task_sets: vec![set("Green", "ts-2", 10.0), set("Blue", "ts-1", 90.0)],
            ..Target::default()
        };
        assert_eq!(
            news(Some(&first), &canary, &names),
            vec![
                "Install Succeeded",
                "AllowTraffic InProgress",
                "traffic: blue web:1 90%, green web:2 10%"
            ]
        );
        let failed = Target {
            events: vec![event("AllowTraffic", "Failed", Some("alarm"))],
            task_sets: vec![set("Green", "ts-9", 10.0)],
            ..Target::default()
        };
        assert_eq!(
            news(Some(&canary), &failed, &names),
            vec!["AllowTraffic Failed: alarm", "traffic: green 10%"]
        );
        assert_eq!(replacement(&canary), Some("ts-2"));
        assert_eq!(replacement(&Target::default()), None);
    }

    #[test]
    fn the_services_group_is_found_once_or_the_error_says_what_to_do() {
        let g = |app: &str, name: &str, cluster: &str, service: &str| Group {
            application: app.into(),
            name: name.into(),
            services: vec![(cluster.into(), service.into())],
            ..Group::default()
        };
        let groups = vec![
            g("a", "web-dg", "prod", "web"),
            g("a", "api-dg", "prod", "api"),
            g("b", "web-dg", "staging", "web"),
        ];
        assert_eq!(pick_group(&groups, "prod", "web").unwrap().name, "web-dg");
        assert_eq!(
            pick_group(
                &groups,
                "arn:aws:ecs:us-east-1:1:cluster/staging",
                "arn:aws:ecs:us-east-1:1:service/staging/web"
            )
            .unwrap()
            .application,
            "b"
        );
        let none = pick_group(&groups, "prod", "worker").unwrap_err();
        assert!(none.contains("--codedeploy-deployment-group"), "{none}");
        let mut twice = groups.clone();
        twice.push(g("c", "other", "prod", "web"));
        let many = pick_group(&twice, "prod", "web").unwrap_err();
        assert!(many.contains("a/web-dg, c/other"), "{many}");
        assert!(group_deploys(&groups[0], "prod", "web"));
        assert!(!group_deploys(&groups[0], "prod", "api"));

        // One of application and group named, the other found.
        type Case<'a> = (
            Option<&'a str>,
            Option<&'a str>,
            &'a str,
            Result<&'a str, &'a str>,
        );
        let cases: Vec<Case> = vec![
            (None, Some("web-dg"), "web", Ok("a")),
            (Some("b"), None, "web", Err("CodeDeploy application b: its groups (b/web-dg) deploy other services, not service web in cluster prod")),
            (None, Some("nope"), "web", Err("no CodeDeploy deployment group matches deployment group nope (in this account")),
            (None, Some("api-dg"), "web", Err("deployment group api-dg: its groups (a/api-dg) deploy other services")),
            (Some("a"), Some("web-dg"), "web", Ok("a")),
        ];
        for (app, name, service, want) in cases {
            let got = pick_named(&groups, app, name, "prod", service);
            match want {
                Ok(application) => assert_eq!(got.unwrap().application, application),
                Err(start) => {
                    let e = got.unwrap_err();
                    assert!(e.starts_with(start), "{e}");
                }
            }
        }
        let many = pick_named(&twice, None, Some("web-dg"), "prod", "web");
        assert_eq!(many.unwrap().application, "a");
    }

    #[test]
    fn another_deployment_is_not_ours() {
        let active = vec!["d-1".to_string(), "d-2".to_string()];
        assert_eq!(other(&active, "d-1"), Some("d-2"));
        assert_eq!(other(&active[..1], "d-1"), None);
        assert_eq!(other(&[], "d-1"), None);
    }
}
