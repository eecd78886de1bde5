//! The ECS rolling-update scheduler as pure decisions: given a service and its live tasks,
//! which tasks to start and stop, and when a deployment is complete or has failed.

use super::model::{breaker_threshold, Deployment, Rollout, Service, Task};

/// One thing the runner should do for a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Start {
        deployment: String,
        task_definition: String,
    },
    Stop {
        task: String,
        reason: String,
    },
    /// The primary deployment has all its tasks healthy and the old ones are gone.
    Complete {
        deployment: String,
    },
    /// A task of this task definition does not fit the sandbox's free capacity.
    Unplaceable {
        task_definition: String,
    },
}

/// True once `deployment` has failed enough tasks to trip the breaker.
pub fn breaker_tripped(deployment: &Deployment) -> bool {
    deployment.rollout == Rollout::InProgress
        && deployment.failed_tasks >= breaker_threshold(deployment.desired_count)
}

/// The task definition to roll back to: the newest deployment of this service that
/// completed, other than the failing one.
pub fn rollback_target<'a>(service: &'a Service, failing: &str) -> Option<&'a str> {
    service
        .deployments
        .iter()
        .chain(service.history.iter().rev())
        .filter(|d| d.id != failing && d.rollout == Rollout::Completed)
        .max_by(|a, b| a.updated_at.total_cmp(&b.updated_at))
        .map(|d| d.task_definition.as_str())
}

/// Decides this tick's actions for `service`. `live` are its tasks that have
/// not stopped; a task counts as healthy per [`Task::is_healthy`] with `stable` seconds;
/// `fits` says whether one more task of a task definition fits the free capacity.
pub fn plan(
    service: &Service,
    live: &[&Task],
    stable: f64,
    mut fits: impl FnMut(&str) -> bool,
) -> Vec<Action> {
    let mut actions = Vec::new();
    let Some(primary) = service.primary() else {
        return actions;
    };
    let desired = service.desired_count;
    let max_total = ((u64::from(desired) * u64::from(service.maximum_percent) / 100).max(1)) as u32;
    let min_healthy =
        (u64::from(desired) * u64::from(service.minimum_healthy_percent)).div_ceil(100) as u32;

    let mine: Vec<&&Task> = live
        .iter()
        .filter(|t| t.started_by == primary.id && t.desired_status != "STOPPED")
        .collect();
    let primary_live = mine.len() as u32;
    let primary_healthy = mine.iter().filter(|t| t.is_healthy(stable)).count() as u32;
    let old: Vec<&&Task> = live
        .iter()
        .filter(|t| t.started_by != primary.id && t.desired_status != "STOPPED")
        .collect();
    let old_healthy = old.iter().filter(|t| t.is_healthy(stable)).count() as u32;

    // Start tasks for the primary deployment within maximumPercent; a failed deployment gets
    // no new tasks.
    if primary.rollout != Rollout::Failed && primary_live < desired {
        let room = max_total.saturating_sub(primary_live + old.len() as u32);
        let wanted = (desired - primary_live).min(room);
        for _ in 0..wanted {
            if fits(&primary.task_definition) {
                actions.push(Action::Start {
                    deployment: primary.id.clone(),
                    task_definition: primary.task_definition.clone(),
                });
            } else {
                actions.push(Action::Unplaceable {
                    task_definition: primary.task_definition.clone(),
                });
                break;
            }
        }
    }

    // Scale the primary down to the desired count.
    for t in mine.iter().skip(desired as usize) {
        actions.push(Action::Stop {
            task: t.id.clone(),
            reason: "Scaling activity initiated by (deployment ".to_string() + &primary.id + ")",
        });
    }

    // Stop old tasks: unhealthy ones at once, healthy ones while minimumHealthyPercent holds.
    let mut spare_healthy = (primary_healthy + old_healthy).saturating_sub(min_healthy);
    for t in &old {
        let stop = if t.is_healthy(stable) {
            if spare_healthy > 0 {
                spare_healthy -= 1;
                true
            } else {
                false
            }
        } else {
            true
        };
        if stop {
            actions.push(Action::Stop {
                task: t.id.clone(),
                reason: format!("Scaling activity initiated by (deployment {})", primary.id),
            });
        }
    }

    if primary.rollout == Rollout::InProgress
        && primary_healthy == desired
        && primary_live == desired
        && old.is_empty()
    {
        actions.push(Action::Complete {
            deployment: primary.id.clone(),
        });
    }
    actions
}

/// Decides this tick's actions for a service whose primary deployment is a BLUE_GREEN,
/// LINEAR or CANARY one still moving forward, and what its tasks show: from SCALE_UP the green
/// (primary) deployment runs its full desired count beside the blue (source) tasks, which go
/// in CLEAN_UP; tasks of any other deployment (a superseded one) stop at once.
pub fn plan_strategy(
    service: &Service,
    live: &[&Task],
    stable: f64,
    mut fits: impl FnMut(&str) -> bool,
) -> (Vec<Action>, crate::lifecycle::Facts) {
    let mut actions = Vec::new();
    let mut facts = crate::lifecycle::Facts {
        green_ready: false,
        others_gone: false,
        strays_gone: false,
    };
    let Some(primary) = service.primary() else {
        return (actions, facts);
    };
    let Some(progress) = primary.progress.as_ref().filter(|p| p.active()) else {
        return (actions, facts);
    };
    let desired = service.desired_count;
    let mine: Vec<&&Task> = live
        .iter()
        .filter(|t| t.started_by == primary.id && t.desired_status != "STOPPED")
        .collect();
    if progress.scaled_up() {
        for _ in mine.len() as u32..desired {
            if fits(&primary.task_definition) {
                actions.push(Action::Start {
                    deployment: primary.id.clone(),
                    task_definition: primary.task_definition.clone(),
                });
            } else {
                actions.push(Action::Unplaceable {
                    task_definition: primary.task_definition.clone(),
                });
                break;
            }
        }
        for t in mine.iter().skip(desired as usize) {
            actions.push(Action::Stop {
                task: t.id.clone(),
                reason: format!("Scaling activity initiated by (deployment {})", primary.id),
            });
        }
    }
    for t in live
        .iter()
        .filter(|t| t.started_by != primary.id && t.desired_status != "STOPPED")
    {
        if progress.source.as_deref() != Some(t.started_by.as_str()) || progress.cleaning_up() {
            actions.push(Action::Stop {
                task: t.id.clone(),
                reason: format!("Scaling activity initiated by (deployment {})", primary.id),
            });
        }
    }
    let healthy = mine.iter().filter(|t| t.is_healthy(stable)).count() as u32;
    facts.green_ready = mine.len() as u32 == desired && healthy == desired;
    facts.others_gone = live.iter().all(|t| t.started_by == primary.id);
    facts.strays_gone = live.iter().all(|t| {
        t.started_by == primary.id || progress.source.as_deref() == Some(t.started_by.as_str())
    });
    (actions, facts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{CircuitBreaker, Deployment, DeploymentStatus, Rollout, Service, Task};
    use std::collections::VecDeque;

    fn deployment(id: &str, primary: bool, rollout: Rollout, desired: u32) -> Deployment {
        Deployment {
            id: id.into(),
            status: if primary {
                DeploymentStatus::Primary
            } else {
                DeploymentStatus::Active
            },
            task_definition: format!("td-{id}"),
            desired_count: desired,
            failed_tasks: 0,
            rollout,
            rollout_reason: String::new(),
            created_at: 0.0,
            updated_at: 0.0,
            rollback_of: None,
            config: Default::default(),
            progress: None,
            triggered_alarms: Vec::new(),
        }
    }

    fn service(desired: u32, deployments: Vec<Deployment>) -> Service {
        Service {
            name: "web".into(),
            arn: "arn".into(),
            cluster_arn: "c".into(),
            task_definition: deployments[0].task_definition.clone(),
            desired_count: desired,
            maximum_percent: 200,
            minimum_healthy_percent: 100,
            breaker: CircuitBreaker {
                enable: true,
                rollback: true,
            },
            strategy: Default::default(),
            deployments,
            events: VecDeque::new(),
            created_at: 0.0,
            active: true,
            tags: serde_json::json!([]),
            history: vec![],
            controller: Default::default(),
            load_balancers: serde_json::json!([]),
            task_sets: vec![],
        }
    }

    fn task(id: &str, deployment: &str, status: &str, health: &str) -> Task {
        Task {
            id: id.into(),
            arn: id.into(),
            cluster_arn: "c".into(),
            task_definition: format!("td-{deployment}"),
            started_by: deployment.into(),
            group: "service:web".into(),
            last_status: status.into(),
            desired_status: "RUNNING".into(),
            health_status: health.into(),
            containers: vec![],
            stopped_reason: None,
            stop_code: None,
            created_at: 0.0,
            started_at: None,
            seen_running_at: None,
            stopped_at: None,
            memory: 0,
            cpu: 0,
            has_health_check: true,
            failure_counted: false,
            stop_timeout: 30,
            command_overrides: Default::default(),
            environment_overrides: Default::default(),
            logs: Default::default(),
            logs_read_at: None,
        }
    }

    fn starts(actions: &[Action]) -> usize {
        actions
            .iter()
            .filter(|a| matches!(a, Action::Start { .. }))
            .count()
    }

    fn stops(actions: &[Action]) -> Vec<String> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Stop { task, .. } => Some(task.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn threshold_is_half_the_desired_count_within_3_and_200() {
        assert_eq!(breaker_threshold(1), 3);
        assert_eq!(breaker_threshold(7), 4);
        assert_eq!(breaker_threshold(10), 5);
        assert_eq!(breaker_threshold(1000), 200);
    }

    #[test]
    fn a_new_deployment_starts_within_maximum_percent_and_keeps_the_old_tasks() {
        let s = service(
            2,
            vec![
                deployment("new", true, Rollout::InProgress, 2),
                deployment("old", false, Rollout::Completed, 2),
            ],
        );
        let (a, b) = (
            task("a", "old", "RUNNING", "HEALTHY"),
            task("b", "old", "RUNNING", "HEALTHY"),
        );
        let actions = plan(&s, &[&a, &b], 1.0, |_| true);
        assert_eq!(starts(&actions), 2, "200% of 2 leaves room for 2 more");
        assert!(
            stops(&actions).is_empty(),
            "100% minimum healthy keeps the old tasks"
        );
    }

    #[test]
    fn old_tasks_stop_as_new_ones_become_healthy_then_the_deployment_completes() {
        let s = service(
            2,
            vec![
                deployment("new", true, Rollout::InProgress, 2),
                deployment("old", false, Rollout::Completed, 2),
            ],
        );
        let (a, b) = (
            task("a", "old", "RUNNING", "HEALTHY"),
            task("b", "old", "RUNNING", "HEALTHY"),
        );
        let n1 = task("n1", "new", "RUNNING", "HEALTHY");
        let n2 = task("n2", "new", "PENDING", "UNKNOWN");
        let actions = plan(&s, &[&a, &b, &n1, &n2], 1.0, |_| true);
        assert_eq!(
            stops(&actions),
            vec!["a"],
            "one new task healthy: one old may go"
        );
        assert!(!actions.iter().any(|a| matches!(a, Action::Complete { .. })));

        let n2 = task("n2", "new", "RUNNING", "HEALTHY");
        let actions = plan(&s, &[&n1, &n2], 1.0, |_| true);
        assert_eq!(
            actions,
            vec![Action::Complete {
                deployment: "new".into()
            }]
        );
    }

    #[test]
    fn unhealthy_old_tasks_go_at_once_and_failed_deployments_get_no_tasks() {
        let s = service(
            1,
            vec![
                deployment("new", true, Rollout::Failed, 1),
                deployment("old", false, Rollout::Completed, 1),
            ],
        );
        let sick = task("s", "old", "RUNNING", "UNHEALTHY");
        let actions = plan(&s, &[&sick], 1.0, |_| true);
        assert_eq!(starts(&actions), 0);
        assert_eq!(stops(&actions), vec!["s"]);
    }

    #[test]
    fn a_task_that_does_not_fit_is_reported_unplaceable() {
        let s = service(2, vec![deployment("new", true, Rollout::InProgress, 2)]);
        let actions = plan(&s, &[], 1.0, |_| false);
        assert_eq!(
            actions,
            vec![Action::Unplaceable {
                task_definition: "td-new".into()
            }]
        );
    }

    #[test]
    fn a_task_without_a_health_check_must_stay_running_to_count() {
        let s = service(
            1,
            vec![
                deployment("new", true, Rollout::InProgress, 1),
                deployment("old", false, Rollout::Completed, 1),
            ],
        );
        let mut n = task("n", "new", "RUNNING", "UNKNOWN");
        n.has_health_check = false;
        n.started_at = Some(9.5);
        n.seen_running_at = Some(10.0);
        let old = task("o", "old", "RUNNING", "HEALTHY");
        let early = plan(&s, &[&n, &old], 1.0, |_| true);
        assert!(stops(&early).is_empty(), "just started: not yet counted");
        assert!(!early.iter().any(|a| matches!(a, Action::Complete { .. })));
        // No newer look has seen it running: however late this plan is, it does not count yet.
        let late = plan(&s, &[&n, &old], 1.0, |_| true);
        assert!(stops(&late).is_empty(), "not seen running long enough");
        n.seen_running_at = Some(10.6);
        let later = plan(&s, &[&n, &old], 1.0, |_| true);
        assert_eq!(stops(&later), vec!["o"]);
    }

    #[test]
    fn the_rollback_target_is_the_last_completed_deployment() {
        let mut s = service(
            1,
            vec![
                deployment("bad", true, Rollout::InProgress, 1),
                deployment("good", false, Rollout::Completed, 1),
            ],
        );
        assert_eq!(rollback_target(&s, "bad"), Some("td-good"));
        s.deployments.truncate(1);
        assert_eq!(rollback_target(&s, "bad"), None);
        let mut older = deployment("older", false, Rollout::Completed, 1);
        older.updated_at = 5.0;
        s.history.push(older);
        assert_eq!(rollback_target(&s, "bad"), Some("td-older"));
    }

    #[test]
    fn a_strategy_deployment_runs_green_beside_blue_from_scale_up_and_stops_blue_in_clean_up() {
        use crate::lifecycle::{steps, Progress};
        use crate::strategy::{read, Config};
        let config = read(
            &serde_json::json!({"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 0}),
            &Config::default(),
        )
        .unwrap();
        let mut green = deployment("green", true, Rollout::InProgress, 2);
        green.progress = Some(Progress::new(
            steps(&config, true),
            Some("blue".into()),
            0.0,
        ));
        let mut s = service(
            2,
            vec![
                green,
                deployment("super", false, Rollout::InProgress, 2),
                deployment("blue", false, Rollout::Completed, 2),
            ],
        );
        let (b1, b2) = (
            task("b1", "blue", "RUNNING", "HEALTHY"),
            task("b2", "blue", "RUNNING", "HEALTHY"),
        );
        let stray = task("x", "super", "RUNNING", "HEALTHY");
        let at = |s: &mut Service, stage| {
            let p = s.deployments[0].progress.as_mut().unwrap();
            p.index = p.steps.iter().position(|st| st.stage == stage).unwrap();
        };
        use crate::strategy::Stage;
        let (actions, facts) = plan_strategy(&s, &[&b1, &b2, &stray], 1.0, |_| true);
        assert_eq!(starts(&actions), 0, "no green task before SCALE_UP");
        assert_eq!(
            stops(&actions),
            vec!["x"],
            "the superseded deployment's task goes"
        );
        assert!(!facts.strays_gone);

        at(&mut s, Stage::ScaleUp);
        let (actions, facts) = plan_strategy(&s, &[&b1, &b2], 1.0, |_| true);
        assert_eq!(starts(&actions), 2, "the full desired count, beside blue");
        assert!(stops(&actions).is_empty());
        assert!(facts.strays_gone && !facts.green_ready);

        let (g1, g2) = (
            task("g1", "green", "RUNNING", "HEALTHY"),
            task("g2", "green", "RUNNING", "HEALTHY"),
        );
        let (actions, facts) = plan_strategy(&s, &[&b1, &b2, &g1, &g2], 1.0, |_| true);
        assert!(actions.is_empty(), "{actions:?}");
        assert!(facts.green_ready && !facts.others_gone);

        at(&mut s, Stage::CleanUp);
        let (actions, _) = plan_strategy(&s, &[&b1, &b2, &g1, &g2], 1.0, |_| true);
        assert_eq!(stops(&actions), vec!["b1", "b2"]);
        let (_, facts) = plan_strategy(&s, &[&g1, &g2], 1.0, |_| true);
        assert!(facts.others_gone);
    }

    #[test]
    fn the_breaker_trips_at_the_threshold() {
        let mut d = deployment("x", true, Rollout::InProgress, 1);
        d.failed_tasks = 2;
        assert!(!breaker_tripped(&d));
        d.failed_tasks = 3;
        assert!(breaker_tripped(&d));
        d.rollout = Rollout::Failed;
        assert!(!breaker_tripped(&d));
    }
}
