//! Whether *our* deployment has succeeded, failed, or is still going, decided from one
//! snapshot of the service (pure). The rules are the contract in the README: success only when
//! our deployment is PRIMARY, COMPLETED and the service runs our task definition.

use crate::aws::types::{DeploymentStatus, RolloutState};

pub use crate::aws::types::DeploymentView;

/// What the watcher has seen of the service at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Snapshot {
    /// The service's current task definition.
    pub task_definition: String,
    pub desired: i32,
    pub running: i32,
    pub deployments: Vec<DeploymentView>,
    /// Tasks of our deployment that stopped for a failure so far, with their reasons.
    pub failed_tasks: Vec<String>,
    /// How many "unable to place a task" events since our deployment began.
    pub placement_failures: u32,
    /// True once the timeout has passed.
    pub timed_out: bool,
    /// True once our deployment has been listed in some snapshot (DescribeServices is
    /// eventually consistent: right after UpdateService it may not be listed yet).
    pub ours_seen: bool,
}

/// Limits for failing fast, before ECS's own circuit breaker (which needs at least 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Failed tasks of our deployment that make it a failure.
    pub failed_tasks: usize,
    /// "Unable to place" events that make it a failure.
    pub placement_failures: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            failed_tasks: 2,
            placement_failures: 3,
        }
    }
}

/// Why our deployment failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// ECS marked our deployment FAILED (circuit breaker or otherwise), and nothing undid it yet.
    RolloutFailed {
        reason: String,
    },
    /// ECS's circuit breaker already rolled back to an earlier task definition.
    RolledBackByEcs {
        to: String,
    },
    /// Tasks of our revision keep stopping.
    TasksFailing {
        count: usize,
        last_reason: String,
    },
    /// Tasks of our revision cannot be placed.
    Unplaceable {
        events: u32,
    },
    /// Another deployment replaced ours; not ours to undo.
    Replaced {
        by: String,
    },
    TimedOut,
    /// ECS could not be read up to the deadline (the endpoint gone, or failing): the state
    /// last seen, and the last error.
    NoAnswer {
        error: String,
        last_seen: Option<String>,
    },
    /// SIGINT or SIGTERM (a person's Ctrl-C, a cancelled CI job) stopped the watch first.
    Interrupted,
}

impl Failure {
    /// One sentence on why the deploy failed.
    pub fn explain(&self) -> String {
        match self {
            Failure::RolloutFailed { reason } => {
                format!("ECS marked the deployment FAILED ({reason})")
            }
            Failure::RolledBackByEcs { to } => {
                format!("ECS's circuit breaker failed the deployment and rolled back to {to}")
            }
            Failure::TasksFailing { count, last_reason } => {
                format!("{count} tasks of the new revision stopped; the last: {last_reason}")
            }
            Failure::Unplaceable { events } => {
                format!("ECS could not place the new tasks ({events} \"unable to place\" events)")
            }
            Failure::Replaced { by } => format!("another deployment ({by}) replaced ours"),
            Failure::TimedOut => "the deployment did not become stable in time".to_string(),
            Failure::NoAnswer { error, last_seen } => format!(
                "ECS could not be read up to the deadline, so the deployment is not verified \
                 ({error}); last seen: {}",
                last_seen
                    .as_deref()
                    .unwrap_or("nothing (it was never read)")
            ),
            Failure::Interrupted => {
                "deckhand was interrupted (SIGINT/SIGTERM) before the deployment was verified"
                    .to_string()
            }
        }
    }
}

/// The watcher's answer for one snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Pending,
    /// Our deployment is done. `nothing_running` is true when desiredCount is 0: nothing was
    /// verified, which must be said loudly.
    Stable {
        nothing_running: bool,
    },
    Failed(Failure),
}

/// Decides the verdict for our deployment `ours` (its id, and the task definition we
/// deployed).
pub fn verdict(snap: &Snapshot, ours: &str, our_task_definition: &str, limits: Limits) -> Verdict {
    let mine = snap.deployments.iter().find(|d| d.id == ours);
    let primary = snap
        .deployments
        .iter()
        .find(|d| matches!(d.status, DeploymentStatus::Primary));

    // ECS rolled back: our deployment FAILED and a newer PRIMARY runs another task definition.
    if let (Some(m), Some(p)) = (mine, primary) {
        if p.id != ours && matches!(m.rollout_state, Some(RolloutState::Failed)) {
            return Verdict::Failed(Failure::RolledBackByEcs {
                to: p.task_definition.clone(),
            });
        }
    }
    let replaced_by = || {
        primary
            .map(|p| p.id.clone())
            .unwrap_or_else(|| "unknown".into())
    };
    // Gone from the list, or no longer PRIMARY without having failed: another deployment took
    // over (ECS keeps a failed deployment listed while its rollback runs). Not ours to undo.
    let Some(m) = mine else {
        if !snap.ours_seen {
            return if snap.timed_out {
                Verdict::Failed(Failure::TimedOut)
            } else {
                Verdict::Pending
            };
        }
        return Verdict::Failed(Failure::Replaced { by: replaced_by() });
    };
    if !matches!(m.status, DeploymentStatus::Primary) {
        return Verdict::Failed(Failure::Replaced { by: replaced_by() });
    }
    if matches!(m.rollout_state, Some(RolloutState::Failed)) {
        return Verdict::Failed(Failure::RolloutFailed {
            reason: m.rollout_reason.clone().unwrap_or_default(),
        });
    }
    let ours_is_live = snap.task_definition == our_task_definition;
    let done = match &m.rollout_state {
        Some(s) => matches!(s, RolloutState::Completed),
        // No rolloutState: done when ours is the only deployment and fully running.
        None => snap.deployments.len() == 1 && m.running == m.desired,
    };
    if done && ours_is_live {
        return Verdict::Stable {
            nothing_running: m.desired == 0,
        };
    }
    if snap.failed_tasks.len() >= limits.failed_tasks {
        return Verdict::Failed(Failure::TasksFailing {
            count: snap.failed_tasks.len(),
            last_reason: snap.failed_tasks.last().cloned().unwrap_or_default(),
        });
    }
    if snap.placement_failures >= limits.placement_failures {
        return Verdict::Failed(Failure::Unplaceable {
            events: snap.placement_failures,
        });
    }
    if snap.timed_out {
        return Verdict::Failed(Failure::TimedOut);
    }
    Verdict::Pending
}

/// A deployment that is still rolling out (someone else's, if we have not started ours):
/// IN_PROGRESS, or the PRIMARY one while several are listed without rollout states.
pub fn busy(deployments: &[DeploymentView]) -> Option<&DeploymentView> {
    deployments
        .iter()
        .find(|d| matches!(d.rollout_state, Some(RolloutState::InProgress)))
        .or_else(|| {
            let unknown = deployments.iter().all(|d| d.rollout_state.is_none());
            (unknown && deployments.len() > 1)
                .then(|| {
                    deployments
                        .iter()
                        .find(|d| matches!(d.status, DeploymentStatus::Primary))
                })
                .flatten()
        })
}

/// True when a stopped task of our deployment stopped because something is wrong with it, not
/// because the scheduler or a person replaced it (pure).
pub fn task_failed(reason: &str, stop_code: &str) -> bool {
    let bad_reason = [
        "Essential container",
        "CannotPull",
        "CannotStart",
        "health checks",
        "OutOfMemory",
        "ResourceInitializationError",
    ]
    .iter()
    .any(|r| reason.contains(r));
    bad_reason || stop_code == "EssentialContainerExited" || stop_code == "TaskFailedToStart"
}

#[cfg(test)]
mod tests {
    use super::*;

    const OURS: &str = "ecs-svc/2";
    const NEW_TD: &str = "td:2";
    const OLD_TD: &str = "td:1";

    fn dep(
        id: &str,
        status: &str,
        td: &str,
        rollout: Option<&str>,
        desired: i32,
        running: i32,
    ) -> DeploymentView {
        DeploymentView {
            id: id.into(),
            status: status.into(),
            task_definition: td.into(),
            rollout_state: rollout.map(RolloutState::from),
            rollout_reason: rollout.map(|r| format!("reason {r}")),
            desired,
            running,
            pending: 0,
            failed: 0,
        }
    }

    #[test]
    fn a_deployment_rolling_out_is_busy() {
        let done = dep("ecs-svc/1", "PRIMARY", OLD_TD, Some("COMPLETED"), 2, 2);
        let going = dep(OURS, "PRIMARY", NEW_TD, Some("IN_PROGRESS"), 2, 1);
        let old = dep("ecs-svc/1", "ACTIVE", OLD_TD, Some("COMPLETED"), 2, 1);
        assert_eq!(busy(std::slice::from_ref(&done)), None);
        assert_eq!(
            busy(&[going.clone(), old]).map(|d| d.id.as_str()),
            Some(OURS)
        );
        // Without rollout states, two deployments listed means one is still replacing the other.
        let a = dep(OURS, "PRIMARY", NEW_TD, None, 2, 1);
        let b = dep("ecs-svc/1", "ACTIVE", OLD_TD, None, 2, 1);
        assert_eq!(busy(&[b, a.clone()]).map(|d| d.id.as_str()), Some(OURS));
        assert_eq!(busy(&[a]), None);
    }

    #[test]
    fn views_serialize_as_ecs_spells_them() {
        let json = |d: &DeploymentView| serde_json::to_string(d).unwrap();
        assert_eq!(
            json(&dep(OURS, "PRIMARY", NEW_TD, Some("COMPLETED"), 2, 2)),
            r#"{"id":"ecs-svc/2","status":"PRIMARY","task_definition_arn":"td:2","rollout_state":"COMPLETED","rollout_state_reason":"reason COMPLETED","desired":2,"running":2,"pending":0,"failed":0}"#
        );
        let newer = dep(OURS, "DRAINING", NEW_TD, None, 0, 0);
        assert_eq!(newer.status, DeploymentStatus::Other("DRAINING".into()));
        assert!(
            json(&newer).contains(
                r#""status":"DRAINING","task_definition_arn":"td:2","rollout_state":null,"#
            ),
            "{}",
            json(&newer)
        );
    }

    fn snap(td: &str, deployments: Vec<DeploymentView>) -> Snapshot {
        Snapshot {
            task_definition: td.into(),
            desired: 2,
            running: 2,
            deployments,
            ours_seen: true,
            ..Snapshot::default()
        }
    }

    #[test]
    fn verdicts_follow_the_contract() {
        let cases: Vec<(&str, Snapshot, Verdict)> = vec![
            (
                "still rolling out",
                snap(
                    NEW_TD,
                    vec![
                        dep(OURS, "PRIMARY", NEW_TD, Some("IN_PROGRESS"), 2, 1),
                        dep("ecs-svc/1", "ACTIVE", OLD_TD, Some("COMPLETED"), 2, 2),
                    ],
                ),
                Verdict::Pending,
            ),
            (
                "completed and live",
                snap(
                    NEW_TD,
                    vec![dep(OURS, "PRIMARY", NEW_TD, Some("COMPLETED"), 2, 2)],
                ),
                Verdict::Stable {
                    nothing_running: false,
                },
            ),
            (
                "desiredCount 0 is stable but verified nothing",
                snap(
                    NEW_TD,
                    vec![dep(OURS, "PRIMARY", NEW_TD, Some("COMPLETED"), 0, 0)],
                ),
                Verdict::Stable {
                    nothing_running: true,
                },
            ),
            (
                "no rolloutState: the only deployment, fully running",
                snap(NEW_TD, vec![dep(OURS, "PRIMARY", NEW_TD, None, 2, 2)]),
                Verdict::Stable {
                    nothing_running: false,
                },
            ),
            (
                "no rolloutState: old deployment still there",
                snap(
                    NEW_TD,
                    vec![
                        dep(OURS, "PRIMARY", NEW_TD, None, 2, 2),
                        dep("ecs-svc/1", "ACTIVE", OLD_TD, None, 2, 1),
                    ],
                ),
                Verdict::Pending,
            ),
            (
                "breaker rolled back: never success, even though a deployment is COMPLETED",
                snap(
                    OLD_TD,
                    vec![
                        dep("ecs-svc/3", "PRIMARY", OLD_TD, Some("COMPLETED"), 2, 2),
                        dep(OURS, "ACTIVE", NEW_TD, Some("FAILED"), 2, 0),
                    ],
                ),
                Verdict::Failed(Failure::RolledBackByEcs { to: OLD_TD.into() }),
            ),
            (
                "breaker rollback still in progress",
                snap(
                    OLD_TD,
                    vec![
                        dep("ecs-svc/3", "PRIMARY", OLD_TD, Some("IN_PROGRESS"), 2, 1),
                        dep(OURS, "ACTIVE", NEW_TD, Some("FAILED"), 2, 0),
                    ],
                ),
                Verdict::Failed(Failure::RolledBackByEcs { to: OLD_TD.into() }),
            ),
            (
                "rollout failed with no rollback",
                snap(
                    NEW_TD,
                    vec![
                        dep(OURS, "PRIMARY", NEW_TD, Some("FAILED"), 2, 0),
                        dep("ecs-svc/1", "ACTIVE", OLD_TD, Some("COMPLETED"), 2, 2),
                    ],
                ),
                Verdict::Failed(Failure::RolloutFailed {
                    reason: "reason FAILED".into(),
                }),
            ),
            (
                "someone else's deployment replaced ours",
                snap(
                    "td:9",
                    vec![
                        dep("ecs-svc/9", "PRIMARY", "td:9", Some("IN_PROGRESS"), 2, 0),
                        dep(OURS, "ACTIVE", NEW_TD, Some("IN_PROGRESS"), 2, 1),
                    ],
                ),
                Verdict::Failed(Failure::Replaced {
                    by: "ecs-svc/9".into(),
                }),
            ),
            (
                "our deployment vanished",
                snap(
                    "td:9",
                    vec![dep("ecs-svc/9", "PRIMARY", "td:9", Some("COMPLETED"), 2, 2)],
                ),
                Verdict::Failed(Failure::Replaced {
                    by: "ecs-svc/9".into(),
                }),
            ),
            (
                "not listed yet right after UpdateService (eventual consistency)",
                Snapshot {
                    ours_seen: false,
                    ..snap(
                        OLD_TD,
                        vec![dep("ecs-svc/1", "PRIMARY", OLD_TD, Some("COMPLETED"), 2, 2)],
                    )
                },
                Verdict::Pending,
            ),
            (
                "never listed before the timeout",
                Snapshot {
                    ours_seen: false,
                    timed_out: true,
                    ..snap(
                        OLD_TD,
                        vec![dep("ecs-svc/1", "PRIMARY", OLD_TD, Some("COMPLETED"), 2, 2)],
                    )
                },
                Verdict::Failed(Failure::TimedOut),
            ),
            (
                "completed, but the service runs another task definition",
                snap(
                    OLD_TD,
                    vec![dep(OURS, "PRIMARY", NEW_TD, Some("COMPLETED"), 2, 2)],
                ),
                Verdict::Pending,
            ),
        ];
        for (name, s, want) in cases {
            assert_eq!(verdict(&s, OURS, NEW_TD, Limits::default()), want, "{name}");
        }
    }

    #[test]
    fn replaced_tasks_are_not_failures() {
        assert!(task_failed(
            "Essential container in task exited",
            "EssentialContainerExited"
        ));
        assert!(task_failed(
            "CannotPullContainerError: x",
            "TaskFailedToStart"
        ));
        assert!(task_failed(
            "Task failed container health checks",
            "ServiceSchedulerInitiated"
        ));
        assert!(!task_failed(
            "Scaling activity initiated by (deployment ecs-svc/1)",
            "ServiceSchedulerInitiated"
        ));
        assert!(!task_failed("Task stopped by user", "UserInitiated"));
    }

    #[test]
    fn failing_tasks_placement_and_timeout_fail_fast() {
        let base = snap(
            NEW_TD,
            vec![dep(OURS, "PRIMARY", NEW_TD, Some("IN_PROGRESS"), 2, 0)],
        );
        let mut s = base.clone();
        s.failed_tasks = vec!["Essential container in task exited".into()];
        assert_eq!(
            verdict(&s, OURS, NEW_TD, Limits::default()),
            Verdict::Pending,
            "one failure may be a blip"
        );
        s.failed_tasks.push("CannotPullContainerError: x".into());
        assert_eq!(
            verdict(&s, OURS, NEW_TD, Limits::default()),
            Verdict::Failed(Failure::TasksFailing {
                count: 2,
                last_reason: "CannotPullContainerError: x".into()
            })
        );
        let mut s = base.clone();
        s.placement_failures = 3;
        assert_eq!(
            verdict(&s, OURS, NEW_TD, Limits::default()),
            Verdict::Failed(Failure::Unplaceable { events: 3 })
        );
        let mut s = base;
        s.timed_out = true;
        assert_eq!(
            verdict(&s, OURS, NEW_TD, Limits::default()),
            Verdict::Failed(Failure::TimedOut)
        );
    }
}
