//! Whether *our* deployment has succeeded, failed, or is still going, decided from one
//! snapshot of the service (pure). The rules are the contract in the README: success only when
//! our deployment is PRIMARY, COMPLETED and the service runs our task definition.

use crate::aws::sdeploy::ServiceDeployment;
use crate::aws::types::{DeploymentStatus, RolloutState};

pub use crate::aws::types::DeploymentView;

/// What the watcher has seen of the service at one moment.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Snapshot {
    /// Our service deployment, where ECS has the API and it was found: the source of truth.
    pub service_deployment: Option<ServiceDeployment>,
    /// Whether the watch is of a deploy, or of ECS rolling our service deployment back.
    pub role: Role,
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

/// What a watch is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Role {
    /// A deploy (or an UpdateService rollback): success is its service deployment done.
    #[default]
    Deploy,
    /// ECS rolling our service deployment back (StopServiceDeployment, a hook's ROLLBACK):
    /// success is ROLLBACK_SUCCESSFUL.
    Rollback,
}

/// The lifecycle stages of a service deployment, in the order ECS goes through them: stages
/// are compared by this order, as a poll can miss the short ones.
pub const STAGES: [&str; 11] = [
    "RECONCILE_SERVICE",
    "PRE_SCALE_UP",
    "SCALE_UP",
    "POST_SCALE_UP",
    "TEST_TRAFFIC_SHIFT",
    "POST_TEST_TRAFFIC_SHIFT",
    "PRE_PRODUCTION_TRAFFIC_SHIFT",
    "PRODUCTION_TRAFFIC_SHIFT",
    "POST_PRODUCTION_TRAFFIC_SHIFT",
    "BAKE_TIME",
    "CLEAN_UP",
];

/// Where `stage` comes in [`STAGES`] (`None` for one this version does not know).
pub fn stage_order(stage: &str) -> Option<usize> {
    STAGES.iter().position(|s| *s == stage)
}

/// Why ECS rolled a service deployment back, in words: the alarms that triggered, the circuit
/// breaker with its count, or ECS's own reason.
pub fn rollback_reason(sd: &ServiceDeployment) -> String {
    let mut why = Vec::new();
    if let Some((status, triggered)) = &sd.alarms {
        if status == "TRIGGERED" || !triggered.is_empty() {
            why.push(if triggered.is_empty() {
                "a deployment alarm went off".to_string()
            } else {
                format!("alarm {} went off", triggered.join(", "))
            });
        }
    }
    if let Some((status, failures, threshold)) = &sd.breaker {
        if status == "TRIGGERED" {
            why.push(format!(
                "the circuit breaker counted {failures} failed tasks (threshold {threshold})"
            ));
        }
    }
    if let Some(h) = sd
        .hooks
        .iter()
        .find(|h| h.status == "FAILED" || h.status == "TIMED_OUT")
    {
        why.push(format!(
            "lifecycle hook {} {}",
            h.id,
            h.status.to_ascii_lowercase().replace('_', " ")
        ));
    }
    let ecs = sd
        .rollback_reason
        .clone()
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| sd.status_reason.clone());
    if !ecs.is_empty() && !why.iter().any(|w| ecs.contains(w.as_str())) {
        why.push(ecs);
    }
    if why.is_empty() {
        "no reason given".to_string()
    } else {
        why.join("; ")
    }
}

/// Whether a deploy told to `--wait-until` stage `until` may end here (pure): the service
/// deployment is going and at that stage or a later one (stages go by their order, as a poll
/// can miss one).
pub fn reached(until: &str, sd: &ServiceDeployment) -> bool {
    let at = sd.stage.as_deref().and_then(stage_order);
    sd.status == "IN_PROGRESS" && at.is_some() && at >= stage_order(until)
}

/// A service deployment in a line, for progress: "IN_PROGRESS at PRODUCTION_TRAFFIC_SHIFT
/// (CANARY, production traffic 10% to the new revision, 1 of 2 new tasks running)".
pub fn describe_service_deployment(sd: &ServiceDeployment) -> String {
    let mut parts = Vec::new();
    if let Some(s) = &sd.strategy {
        parts.push(s.clone());
    }
    if let Some(w) = sd.production_weight {
        parts.push(format!("production traffic {w}% to the new revision"));
    }
    if let Some(w) = sd.test_weight.filter(|w| *w > 0.0) {
        parts.push(format!("test traffic {w}%"));
    }
    if sd.stage.as_deref() == Some("BAKE_TIME") {
        if let Some(m) = sd.bake_minutes {
            parts.push(format!("bake time {m} min"));
        }
    }
    parts.push(format!(
        "{} of {} new tasks running",
        sd.target_running, sd.target_requested
    ));
    let at = sd
        .stage
        .as_deref()
        .map(|s| format!(" at {s}"))
        .unwrap_or_default();
    format!(
        "service deployment {}{at} ({})",
        sd.status,
        parts.join(", ")
    )
}

/// ", times out in 9m 58s with ROLLBACK" for a paused hook at `now` ("" when ECS gives no
/// expiry).
pub fn hook_timeout(hook: &crate::aws::sdeploy::Hook, now: f64) -> String {
    let Some(at) = hook.expires_at else {
        return String::new();
    };
    let left = (at - now).max(0.0) as u64;
    format!(
        ", times out in {}m {:02}s{}",
        left / 60,
        left % 60,
        hook.timeout_action
            .as_deref()
            .map(|a| format!(" with {a}"))
            .unwrap_or_default()
    )
}

/// What the service deployment decides, if it decides (pure): for a deploy SUCCESSFUL is
/// success, ECS's rollback a failure (exit 3 once it succeeded), a stop by anyone else a
/// replacement; for ECS rolling ours back, ROLLBACK_SUCCESSFUL is success. `None` while it
/// is going (the stopped-task and placement checks still apply).
pub fn by_service_deployment(sd: &ServiceDeployment, role: Role) -> Option<Verdict> {
    let failed = |f| Some(Verdict::Failed(f));
    match (role, sd.status.as_str()) {
        (_, "PENDING" | "IN_PROGRESS") => None,
        (Role::Deploy, "SUCCESSFUL") => Some(Verdict::Stable {
            nothing_running: sd.target_requested == 0,
        }),
        (Role::Deploy, "ROLLBACK_REQUESTED" | "ROLLBACK_IN_PROGRESS") => None,
        (Role::Deploy, "ROLLBACK_SUCCESSFUL") => failed(Failure::EcsRolledBack {
            reason: rollback_reason(sd),
        }),
        (_, "ROLLBACK_FAILED") => failed(Failure::EcsRollbackFailed {
            reason: rollback_reason(sd),
        }),
        (Role::Rollback, "ROLLBACK_REQUESTED" | "ROLLBACK_IN_PROGRESS") => None,
        (Role::Rollback, "ROLLBACK_SUCCESSFUL") => Some(Verdict::Stable {
            nothing_running: false,
        }),
        (Role::Rollback, "SUCCESSFUL") => failed(Failure::RolloutFailed {
            reason: "it completed before the rollback took hold".into(),
        }),
        (_, other) => failed(Failure::Replaced {
            by: if sd.status_reason.is_empty() {
                format!("its service deployment is {other}")
            } else {
                format!("its service deployment is {other}: {}", sd.status_reason)
            },
        }),
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
    /// ECS rolled our service deployment back and the rollback succeeded: the service is on
    /// the previous revision again (alarms, circuit breaker, a hook).
    EcsRolledBack {
        reason: String,
    },
    /// ECS's rollback of our service deployment failed.
    EcsRollbackFailed {
        reason: String,
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
            Failure::EcsRolledBack { reason } => {
                format!("ECS rolled the deployment back: {reason}")
            }
            Failure::EcsRollbackFailed { reason } => {
                format!("ECS's rollback of the deployment failed: {reason}")
            }
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
    if let Some(sd) = &snap.service_deployment {
        if let Some(v) = by_service_deployment(sd, snap.role) {
            // Replaced: named by the deployment that replaced ours, where the service shows it.
            let newer = snap
                .deployments
                .iter()
                .find(|d| d.status == DeploymentStatus::Primary && d.id != ours);
            return match (v, newer) {
                (Verdict::Failed(Failure::Replaced { .. }), Some(p)) => {
                    Verdict::Failed(Failure::Replaced { by: p.id.clone() })
                }
                (v, _) => v,
            };
        }
        // Going, by ECS's word: deckhand's own fail-fast, unless ECS is rolling it back
        // already (a rollback is ECS's to judge, up to the timeout).
        let ecs_undoing = snap.role == Role::Rollback || sd.status.starts_with("ROLLBACK_");
        return match ecs_undoing {
            false => fail_fast(snap, limits).unwrap_or(Verdict::Pending),
            true if snap.timed_out => Verdict::Failed(Failure::TimedOut),
            true => Verdict::Pending,
        };
    }
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
    fail_fast(snap, limits).unwrap_or(Verdict::Pending)
}

/// A failure seen before ECS decides: too many failed tasks, placement failing, the timeout.
fn fail_fast(snap: &Snapshot, limits: Limits) -> Option<Verdict> {
    let failure = if snap.failed_tasks.len() >= limits.failed_tasks {
        Failure::TasksFailing {
            count: snap.failed_tasks.len(),
            last_reason: snap.failed_tasks.last().cloned().unwrap_or_default(),
        }
    } else if snap.placement_failures >= limits.placement_failures {
        Failure::Unplaceable {
            events: snap.placement_failures,
        }
    } else if snap.timed_out {
        Failure::TimedOut
    } else {
        return None;
    };
    Some(Verdict::Failed(failure))
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

    fn sd(status: &str, stage: Option<&str>) -> ServiceDeployment {
        ServiceDeployment {
            arn: "arn:sd/1".into(),
            status: status.into(),
            stage: stage.map(str::to_string),
            target_requested: 2,
            ..ServiceDeployment::default()
        }
    }

    #[test]
    fn the_service_deployment_decides_for_every_strategy() {
        use Role::{Deploy, Rollback};
        let stable = Some(Verdict::Stable {
            nothing_running: false,
        });
        let mut alarm = sd("ROLLBACK_SUCCESSFUL", Some("BAKE_TIME"));
        alarm.alarms = Some(("TRIGGERED".into(), vec!["web-5xx".into()]));
        alarm.rollback_reason = Some("Alarm web-5xx went into ALARM state".into());
        let mut breaker = sd("ROLLBACK_SUCCESSFUL", None);
        breaker.breaker = Some(("TRIGGERED".into(), 3, 3));
        let mut stopped = sd("STOPPED", None);
        stopped.status_reason = "Superseded by a newer deployment.".into();
        let cases: Vec<(ServiceDeployment, Role, Option<Verdict>)> = vec![
            (sd("PENDING", None), Deploy, None),
            (sd("IN_PROGRESS", Some("SCALE_UP")), Deploy, None),
            (sd("SUCCESSFUL", Some("CLEAN_UP")), Deploy, stable.clone()),
            (sd("ROLLBACK_IN_PROGRESS", None), Deploy, None),
            (
                alarm,
                Deploy,
                Some(Verdict::Failed(Failure::EcsRolledBack {
                    reason: "alarm web-5xx went off; Alarm web-5xx went into ALARM state".into(),
                })),
            ),
            (
                breaker,
                Deploy,
                Some(Verdict::Failed(Failure::EcsRolledBack {
                    reason: "the circuit breaker counted 3 failed tasks (threshold 3)".into(),
                })),
            ),
            (
                sd("ROLLBACK_FAILED", None),
                Deploy,
                Some(Verdict::Failed(Failure::EcsRollbackFailed {
                    reason: "no reason given".into(),
                })),
            ),
            (
                stopped,
                Deploy,
                Some(Verdict::Failed(Failure::Replaced {
                    by: "its service deployment is STOPPED: Superseded by a newer deployment."
                        .into(),
                })),
            ),
            (sd("ROLLBACK_REQUESTED", None), Rollback, None),
            (sd("ROLLBACK_SUCCESSFUL", None), Rollback, stable),
            (
                sd("SUCCESSFUL", None),
                Rollback,
                Some(Verdict::Failed(Failure::RolloutFailed {
                    reason: "it completed before the rollback took hold".into(),
                })),
            ),
        ];
        for (d, role, want) in cases {
            assert_eq!(
                by_service_deployment(&d, role),
                want,
                "{} {role:?}",
                d.status
            );
        }
        let mut none = sd("SUCCESSFUL", None);
        none.target_requested = 0;
        assert_eq!(
            by_service_deployment(&none, Deploy),
            Some(Verdict::Stable {
                nothing_running: true
            })
        );
    }

    #[test]
    fn a_service_deployment_going_still_fails_fast_unless_ecs_rolls_it_back() {
        let snap = |status: &str, role: Role| Snapshot {
            service_deployment: Some(sd(status, Some("SCALE_UP"))),
            role,
            failed_tasks: vec!["exit 1".into(), "exit 1".into()],
            // deployments[] would say another deployment replaced ours: not the source now.
            ours_seen: true,
            ..Snapshot::default()
        };
        let limits = Limits::default();
        assert!(matches!(
            verdict(&snap("IN_PROGRESS", Role::Deploy), OURS, NEW_TD, limits),
            Verdict::Failed(Failure::TasksFailing { count: 2, .. })
        ));
        assert_eq!(
            verdict(
                &snap("ROLLBACK_IN_PROGRESS", Role::Deploy),
                OURS,
                NEW_TD,
                limits
            ),
            Verdict::Pending
        );
        assert_eq!(
            verdict(&snap("IN_PROGRESS", Role::Rollback), OURS, NEW_TD, limits),
            Verdict::Pending
        );
        let mut late = snap("ROLLBACK_IN_PROGRESS", Role::Deploy);
        late.timed_out = true;
        assert_eq!(
            verdict(&late, OURS, NEW_TD, limits),
            Verdict::Failed(Failure::TimedOut)
        );
    }

    #[test]
    fn a_stopped_service_deployment_is_named_by_the_deployment_that_replaced_it() {
        let mut snap = Snapshot {
            service_deployment: Some(sd("STOPPED", None)),
            ours_seen: true,
            ..Snapshot::default()
        };
        let limits = Limits::default();
        let replaced = |by: &str| Verdict::Failed(Failure::Replaced { by: by.to_string() });
        assert_eq!(
            verdict(&snap, OURS, NEW_TD, limits),
            replaced("its service deployment is STOPPED")
        );
        snap.deployments = vec![
            dep("ecs-svc/9", "PRIMARY", "td:3", Some("IN_PROGRESS"), 1, 0),
            dep(OURS, "ACTIVE", NEW_TD, Some("IN_PROGRESS"), 1, 0),
        ];
        assert_eq!(verdict(&snap, OURS, NEW_TD, limits), replaced("ecs-svc/9"));
    }

    #[test]
    fn stages_are_compared_by_their_order() {
        assert!(stage_order("SCALE_UP") < stage_order("BAKE_TIME"));
        assert_eq!(stage_order("NOT_A_STAGE"), None);
        let at = |status: &str, stage: Option<&str>| reached("BAKE_TIME", &sd(status, stage));
        assert!(at("IN_PROGRESS", Some("BAKE_TIME")));
        assert!(at("IN_PROGRESS", Some("CLEAN_UP")), "a later stage counts");
        assert!(!at("IN_PROGRESS", Some("PRODUCTION_TRAFFIC_SHIFT")));
        assert!(!at("IN_PROGRESS", None));
        assert!(!at("ROLLBACK_IN_PROGRESS", Some("CLEAN_UP")));
        assert!(!at("IN_PROGRESS", Some("SOME_NEW_STAGE")));
    }

    #[test]
    fn progress_names_the_stage_traffic_and_bake() {
        let mut d = sd("IN_PROGRESS", Some("PRODUCTION_TRAFFIC_SHIFT"));
        d.strategy = Some("CANARY".into());
        d.production_weight = Some(10.0);
        d.target_running = 2;
        assert_eq!(
            describe_service_deployment(&d),
            "service deployment IN_PROGRESS at PRODUCTION_TRAFFIC_SHIFT (CANARY, production \
             traffic 10% to the new revision, 2 of 2 new tasks running)"
        );
        d.stage = Some("BAKE_TIME".into());
        d.bake_minutes = Some(5);
        d.production_weight = Some(100.0);
        assert!(
            describe_service_deployment(&d).contains("100% to the new revision, bake time 5 min")
        );
        let hook = crate::aws::sdeploy::Hook {
            id: "ecs-pause-1".into(),
            target_type: "PAUSE".into(),
            status: "AWAITING_ACTION".into(),
            expires_at: Some(1000.0 + 598.0),
            timeout_action: Some("ROLLBACK".into()),
        };
        assert_eq!(
            hook_timeout(&hook, 1000.0),
            ", times out in 9m 58s with ROLLBACK"
        );
        assert_eq!(
            hook_timeout(
                &crate::aws::sdeploy::Hook {
                    expires_at: None,
                    ..hook
                },
                0.0
            ),
            ""
        );
    }

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
