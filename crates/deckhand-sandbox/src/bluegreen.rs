//! The runner's CodeDeploy step: on each tick every deployment not yet over walks the ECS
//! lifecycle events (hooks, the replacement task set, test and production traffic, the ready
//! and termination waits), as pure decisions here and task set changes on the ECS side.
//!
//! Choices where the developer guide leaves room:
//! - A hook event whose AppSpec names no function is Skipped; AllowTestTraffic is Skipped
//!   when the group's target group pair has no test listener, else Succeeded at once.
//! - A named hook "runs" for one tick (the sandbox has no Lambda) and then succeeds, unless
//!   `/_sandbox/hooks` says the function fails.
//! - While the original task set waits to be terminated, the deployment is `Baking`; the
//!   replacement becomes PRIMARY and the original is deleted when the wait ends.
//! - With STOP_DEPLOYMENT and a wait of 0 minutes the deployment waits for
//!   ContinueDeployment with no time limit; when a wait runs out it is Stopped (TIMEOUT)
//!   and left as it is.
//! - A rollback deployment runs no hooks (its hook events are Skipped): AllowTraffic moves all
//!   traffic back to the original task set, then the replacement is deleted.

use super::codedeploy::{
    self, Deployment, EventStatus, Phase, Routing, Status, EVENTS, HOOK_EVENTS,
};
use super::model::{breaker_threshold, State, Time};
use super::taskset;
use super::Options;

/// The replacement's share of production traffic `elapsed` minutes into AllowTraffic, and
/// whether the shift is over.
pub fn traffic_weight(routing: Routing, elapsed: f64) -> (f64, bool) {
    match routing {
        Routing::AllAtOnce => (100.0, true),
        Routing::Canary(p, interval) if elapsed < interval => (p, false),
        Routing::Canary(..) => (100.0, true),
        Routing::Linear(p, interval) => {
            let w = (p * ((elapsed / interval).floor() + 1.0)).min(100.0);
            (w, w >= 100.0)
        }
    }
}

/// What the ECS side shows of a deployment this tick.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Facts {
    /// Every task the replacement task set wants runs healthy.
    pub green_ready: bool,
    /// Replacement tasks that failed, and how many fail the Install event.
    pub green_failed: u32,
    pub threshold: u32,
    /// The group's alarms now in ALARM.
    pub alarms: Vec<String>,
}

/// A change to the service's task sets that a lifecycle step asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Create the replacement task set with the AppSpec's task definition.
    CreateGreen,
    /// The replacement becomes PRIMARY; the original is deleted.
    Promote,
    /// The replacement is deleted; the original stays (or becomes again) PRIMARY.
    DropGreen,
}

/// What one tick did to a deployment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
    pub effects: Vec<Effect>,
    /// (errorCode, message) when the deployment fails or stops.
    pub failure: Option<(&'static str, String)>,
}

/// Moves deployment `d` as far as it goes this tick (pure). `fails` says whether a hook
/// function fails; `minute` is a deployment minute in seconds.
pub fn advance(
    d: &mut Deployment,
    facts: &Facts,
    fails: impl Fn(&str) -> bool,
    now: Time,
    minute: f64,
) -> Outcome {
    let mut out = Outcome::default();
    if d.status.is_over() {
        return out;
    }
    if d.status == Status::Created {
        d.status = Status::InProgress;
        d.started = Some(now);
        d.updated = now;
    }
    if d.rollback_of.is_some() {
        return roll_back(d, now);
    }
    if d.settings.alarms_enabled && !facts.alarms.is_empty() {
        out.failure = Some((
            "ALARM_ACTIVE",
            format!(
                "The deployment was stopped because alarm(s) were activated: {}.",
                facts.alarms.join(", ")
            ),
        ));
        return out;
    }
    for _ in 0..(2 * EVENTS.len() + 4) {
        let elapsed = (now - d.phase_since) / minute;
        match d.phase {
            Phase::Event(i) => {
                let name = EVENTS[i];
                let status = d.events[i].status;
                let finish = |d: &mut Deployment, s: EventStatus| {
                    let e = &mut d.events[i];
                    e.start.get_or_insert(now);
                    e.end = Some(now);
                    e.status = s;
                };
                if HOOK_EVENTS.contains(&name) {
                    let function = d.app_spec.hooks.get(name).cloned();
                    match (status, function) {
                        (EventStatus::Pending, None) => finish(d, EventStatus::Skipped),
                        (EventStatus::Pending, Some(_)) => {
                            d.events[i].status = EventStatus::InProgress;
                            d.events[i].start = Some(now);
                            d.updated = now;
                            break;
                        }
                        (_, Some(f)) if fails(&f) => {
                            finish(d, EventStatus::Failed);
                            let message = format!(
                                "The lifecycle event {name} failed: its hook function {f} reported Failed."
                            );
                            d.events[i].diagnostics =
                                Some(("ScriptFailed".into(), f.clone(), message.clone()));
                            out.failure = Some(("HOOK_EXECUTION_FAILURE", message));
                            return out;
                        }
                        _ => finish(d, EventStatus::Succeeded),
                    }
                } else if name == "Install" {
                    match status {
                        EventStatus::Pending => {
                            d.events[i].status = EventStatus::InProgress;
                            d.events[i].start = Some(now);
                            d.updated = now;
                            out.effects.push(Effect::CreateGreen);
                            break;
                        }
                        _ if facts.green_failed >= facts.threshold => {
                            finish(d, EventStatus::Failed);
                            let message = format!(
                                "The ECS service could not run the replacement task set: {} of its tasks failed to start (the limit is {}).",
                                facts.green_failed, facts.threshold
                            );
                            d.events[i].diagnostics =
                                Some(("UnknownError".into(), String::new(), message.clone()));
                            out.failure = Some(("ECS_UPDATE_ERROR", message));
                            return out;
                        }
                        _ if facts.green_ready => finish(d, EventStatus::Succeeded),
                        _ => break,
                    }
                } else if name == "AllowTestTraffic" {
                    let s = if d.settings.test_listeners {
                        EventStatus::Succeeded
                    } else {
                        EventStatus::Skipped
                    };
                    finish(d, s);
                } else {
                    // AllowTraffic: production traffic moves as the configuration says.
                    let start = *d.events[i].start.get_or_insert(now);
                    d.events[i].status = EventStatus::InProgress;
                    let (weight, done) = traffic_weight(d.routing, (now - start) / minute);
                    if weight != d.green_weight {
                        d.green_weight = weight;
                        d.updated = now;
                    }
                    if !done {
                        break;
                    }
                    finish(d, EventStatus::Succeeded);
                }
                d.updated = now;
                d.phase_since = now;
                d.phase = match i {
                    4 => Phase::ReadyWait,
                    7 => Phase::TerminationWait,
                    _ => Phase::Event(i + 1),
                };
            }
            Phase::ReadyWait => {
                let wait = d.settings.ready_wait_minutes;
                let go = d.ready_released || (!d.settings.ready_stop && elapsed >= wait);
                if go {
                    d.status = Status::InProgress;
                    d.phase = Phase::Event(5);
                    d.phase_since = now;
                    d.updated = now;
                    continue;
                }
                if d.settings.ready_stop {
                    if d.status != Status::Ready {
                        d.status = Status::Ready;
                        d.updated = now;
                    }
                    if wait > 0.0 && elapsed >= wait {
                        out.failure = Some((
                            "TIMEOUT",
                            format!(
                                "Traffic was not rerouted within {wait} minutes (deploymentReadyOption STOP_DEPLOYMENT)."
                            ),
                        ));
                        return out;
                    }
                }
                break;
            }
            Phase::TerminationWait => {
                if d.status != Status::Baking {
                    d.status = Status::Baking;
                    d.updated = now;
                }
                if d.termination_released || elapsed >= d.settings.termination_wait_minutes {
                    out.effects.push(Effect::Promote);
                    d.status = Status::Succeeded;
                    d.completed = Some(now);
                    d.updated = now;
                    d.phase = Phase::Done;
                }
                break;
            }
            Phase::Done => break,
        }
    }
    out
}

/// A rollback deployment: traffic back to the original task set, then the replacement goes.
fn roll_back(d: &mut Deployment, now: Time) -> Outcome {
    let mut out = Outcome::default();
    for e in d.events.iter_mut() {
        e.start.get_or_insert(now);
        e.end = Some(now);
        e.status = match e.name {
            "AllowTraffic" => EventStatus::Succeeded,
            _ => EventStatus::Skipped,
        };
    }
    d.green_weight = 0.0;
    out.effects.push(Effect::DropGreen);
    d.status = Status::Succeeded;
    d.completed = Some(now);
    d.updated = now;
    d.phase = Phase::Done;
    out
}

/// What the ECS side shows of deployment `d`.
fn facts(options: &Options, state: &State, d: &Deployment) -> Facts {
    let mut f = Facts {
        threshold: 3,
        alarms: d
            .settings
            .alarms
            .iter()
            .filter(|a| state.alarms.get(*a).is_some_and(|s| s == "ALARM"))
            .cloned()
            .collect(),
        ..Facts::default()
    };
    let Some(c) = state.clusters.get(&d.cluster) else {
        return f;
    };
    let Some(s) = c.services.get(&d.service) else {
        return f;
    };
    let Some(green) = d
        .green
        .as_ref()
        .and_then(|g| s.task_sets.iter().find(|t| &t.id == g))
    else {
        return f;
    };
    let wanted = green.desired(s);
    let stable = options.stable_after.as_secs_f64();
    let mine: Vec<_> = c
        .tasks
        .values()
        .filter(|t| t.started_by == green.id && t.is_live() && t.desired_status != "STOPPED")
        .collect();
    f.green_ready = mine.len() as u32 == wanted
        && mine.iter().filter(|t| t.is_healthy(stable)).count() as u32 == wanted;
    f.green_failed = green.failed_tasks;
    f.threshold = state
        .mode
        .replacement_failure_limit
        .unwrap_or_else(|| breaker_threshold(wanted));
    f
}

/// Carries out `effect` for deployment `id` on its service's task sets.
fn apply(state: &mut State, id: &str, effect: &Effect, now: Time) {
    let Some(d) = state.codedeploy.deployments.get(id).cloned() else {
        return;
    };
    let Some(s) = state
        .clusters
        .get_mut(&d.cluster)
        .and_then(|c| c.services.get_mut(&d.service))
    else {
        return;
    };
    match effect {
        Effect::CreateGreen => {
            let mut set = taskset::new_task_set(
                s,
                &d.app_spec.task_definition,
                taskset::Status::Active,
                100.0,
                now,
            );
            set.external_id = Some(d.id.clone());
            set.started_by = Some("CODE_DEPLOY".into());
            let green = set.id.clone();
            s.task_sets.push(set);
            s.push_event(
                super::runner::event_id(),
                now,
                format!(
                    "(service {}) created taskSet {green} for CodeDeploy deployment {}.",
                    s.name, d.id
                ),
            );
            if let Some(d) = state.codedeploy.deployments.get_mut(id) {
                d.green = Some(green);
            }
        }
        Effect::Promote => {
            if let Some(g) = &d.green {
                taskset::make_primary(s, g, now);
            }
            if let Some(b) = d.blue.as_ref().filter(|b| Some(*b) != d.green.as_ref()) {
                taskset::drain(s, b, now);
            }
        }
        Effect::DropGreen => {
            if let Some(b) = &d.blue {
                taskset::make_primary(s, b, now);
            }
            if let Some(g) = &d.green {
                taskset::drain(s, g, now);
            }
        }
    }
}

/// Moves every CodeDeploy deployment that is not over along by one tick, oldest first.
pub fn step(options: &Options, state: &mut State, now: Time) {
    let minute = 60.0 * options.time_scale;
    let mut ids: Vec<(Time, String)> = state
        .codedeploy
        .deployments
        .values()
        .filter(|d| !d.status.is_over())
        .map(|d| (d.created, d.id.clone()))
        .collect();
    ids.sort_by(|a, b| a.0.total_cmp(&b.0));
    for (_, id) in ids {
        let mut d = state.codedeploy.deployments[&id].clone();
        if d.status == Status::Created && d.blue.is_none() {
            let primary = state
                .clusters
                .get(&d.cluster)
                .and_then(|c| c.services.get(&d.service))
                .and_then(|s| {
                    s.task_sets
                        .iter()
                        .find(|t| t.status == taskset::Status::Primary)
                })
                .map(|t| t.id.clone());
            match primary {
                Some(p) => d.blue = Some(p),
                None => {
                    state.codedeploy.deployments.insert(id.clone(), d);
                    codedeploy::fail(
                        state,
                        &id,
                        "INVALID_ECS_SERVICE",
                        "The ECS service is gone or has no primary task set to deploy from.",
                        Some(false),
                        now,
                    );
                    continue;
                }
            }
        }
        let f = facts(options, state, &d);
        let hooks = state.codedeploy.hooks.clone();
        let outcome = advance(
            &mut d,
            &f,
            |function| codedeploy::hook_fails(&hooks, function),
            now,
            minute,
        );
        state.codedeploy.deployments.insert(id.clone(), d);
        for effect in &outcome.effects {
            apply(state, &id, effect, now);
        }
        if let Some((code, message)) = outcome.failure {
            codedeploy::fail(state, &id, code, &message, None, now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codedeploy::{AppSpec, Settings};

    #[test]
    fn traffic_moves_at_once_in_a_canary_step_or_linearly() {
        let cases = [
            (Routing::AllAtOnce, 0.0, (100.0, true)),
            (Routing::Canary(20.0, 1.0), 0.0, (20.0, false)),
            (Routing::Canary(20.0, 1.0), 0.99, (20.0, false)),
            (Routing::Canary(20.0, 1.0), 1.0, (100.0, true)),
            (Routing::Linear(10.0, 1.0), 0.0, (10.0, false)),
            (Routing::Linear(10.0, 1.0), 2.5, (30.0, false)),
            (Routing::Linear(10.0, 1.0), 9.0, (100.0, true)),
            (Routing::Linear(30.0, 3.0), 6.0, (90.0, false)),
            (Routing::Linear(30.0, 3.0), 9.0, (100.0, true)),
        ];
        for (routing, elapsed, want) in cases {
            assert_eq!(
                traffic_weight(routing, elapsed),
                want,
                "{routing:?} at {elapsed}"
            );
        }
    }

    fn settings() -> Settings {
        Settings {
            ready_stop: false,
            ready_wait_minutes: 0.0,
            termination_wait_minutes: 0.0,
            auto_rollback: true,
            rollback_events: vec!["DEPLOYMENT_FAILURE".into()],
            alarms_enabled: true,
            alarms: vec!["errors".into()],
            test_listeners: false,
            target_groups: vec!["blue".into(), "green".into()],
        }
    }

    fn deployment(hooks: &[(&str, &str)], routing: Routing, settings: Settings) -> Deployment {
        let mut d = state_deployment(routing, settings);
        d.app_spec = AppSpec {
            task_definition: "td".into(),
            container_name: "app".into(),
            container_port: 80,
            hooks: hooks
                .iter()
                .map(|(e, f)| (e.to_string(), f.to_string()))
                .collect(),
        };
        d
    }

    /// A fresh deployment as CreateDeployment makes it.
    fn state_deployment(routing: Routing, settings: Settings) -> Deployment {
        let events = EVENTS
            .iter()
            .map(|name| codedeploy::Event {
                name,
                status: EventStatus::Pending,
                start: None,
                end: None,
                diagnostics: None,
            })
            .collect();
        Deployment {
            id: "d-TEST00000".into(),
            application: "app".into(),
            group: "g".into(),
            config: "c".into(),
            routing,
            revision: serde_json::json!({}),
            description: None,
            app_spec: AppSpec {
                task_definition: "td".into(),
                container_name: "app".into(),
                container_port: 80,
                hooks: Default::default(),
            },
            status: Status::Created,
            error: None,
            created: 0.0,
            started: None,
            completed: None,
            updated: 0.0,
            creator: "user",
            rollback_deployment: None,
            rollback_of: None,
            rollback_message: None,
            cluster: "c".into(),
            service: "web".into(),
            blue: Some("ecs-svc/1".into()),
            green: None,
            green_weight: 0.0,
            events,
            phase: Phase::Event(0),
            phase_since: 0.0,
            ready_released: false,
            termination_released: false,
            settings,
            echo: serde_json::json!({}),
            messages: vec![],
        }
    }

    fn statuses(d: &Deployment) -> Vec<&'static str> {
        d.events.iter().map(|e| e.status.as_str()).collect()
    }

    fn ready() -> Facts {
        Facts {
            green_ready: true,
            threshold: 3,
            ..Facts::default()
        }
    }

    #[test]
    fn a_deployment_without_hooks_walks_every_event_and_promotes_the_replacement() {
        let mut d = deployment(&[], Routing::AllAtOnce, settings());
        let first = advance(&mut d, &Facts::default(), |_| false, 1.0, 60.0);
        assert_eq!(first.effects, vec![Effect::CreateGreen]);
        assert_eq!(d.status, Status::InProgress);
        assert_eq!(statuses(&d)[..2], ["Skipped", "InProgress"]);
        let waiting = advance(
            &mut d,
            &Facts {
                threshold: 3,
                ..Facts::default()
            },
            |_| false,
            2.0,
            60.0,
        );
        assert_eq!(
            waiting,
            Outcome::default(),
            "Install waits for healthy tasks"
        );
        let done = advance(&mut d, &ready(), |_| false, 3.0, 60.0);
        assert_eq!(done.effects, vec![Effect::Promote]);
        assert_eq!(d.status, Status::Succeeded);
        assert_eq!(d.green_weight, 100.0);
        assert_eq!(
            statuses(&d),
            [
                "Skipped",
                "Succeeded",
                "Skipped",
                "Skipped",
                "Skipped",
                "Skipped",
                "Succeeded",
                "Skipped"
            ]
        );
    }

    #[test]
    fn a_named_hook_runs_for_a_tick_and_a_failing_one_fails_the_deployment() {
        let mut d = deployment(
            &[("BeforeInstall", "check")],
            Routing::AllAtOnce,
            settings(),
        );
        let o = advance(&mut d, &Facts::default(), |_| false, 1.0, 60.0);
        assert!(o.effects.is_empty());
        assert_eq!(statuses(&d)[0], "InProgress");
        let o = advance(&mut d, &Facts::default(), |_| false, 2.0, 60.0);
        assert_eq!(o.effects, vec![Effect::CreateGreen]);
        assert_eq!(statuses(&d)[0], "Succeeded");

        let mut d = deployment(&[("AfterInstall", "smoke")], Routing::AllAtOnce, settings());
        advance(&mut d, &Facts::default(), |_| false, 1.0, 60.0);
        advance(&mut d, &ready(), |_| false, 2.0, 60.0);
        let o = advance(&mut d, &ready(), |f| f == "smoke", 3.0, 60.0);
        assert_eq!(o.failure.as_ref().unwrap().0, "HOOK_EXECUTION_FAILURE");
        assert!(o.failure.unwrap().1.contains("smoke"));
        assert_eq!(statuses(&d)[2], "Failed");
        assert_eq!(d.events[2].diagnostics.as_ref().unwrap().1, "smoke");
    }

    #[test]
    fn failed_replacement_tasks_fail_install_and_alarms_stop_the_deployment() {
        let mut d = deployment(&[], Routing::AllAtOnce, settings());
        advance(&mut d, &Facts::default(), |_| false, 1.0, 60.0);
        let failing = Facts {
            green_failed: 3,
            threshold: 3,
            ..Facts::default()
        };
        let o = advance(&mut d, &failing, |_| false, 2.0, 60.0);
        assert_eq!(o.failure.unwrap().0, "ECS_UPDATE_ERROR");
        assert_eq!(statuses(&d)[1], "Failed");

        let mut d = deployment(&[], Routing::AllAtOnce, settings());
        let alarm = Facts {
            alarms: vec!["errors".into()],
            ..ready()
        };
        let o = advance(&mut d, &alarm, |_| false, 1.0, 60.0);
        assert_eq!(o.failure.unwrap().0, "ALARM_ACTIVE");
    }

    #[test]
    fn canary_traffic_waits_its_interval_and_the_waits_hold_the_deployment() {
        let s = Settings {
            ready_stop: true,
            ready_wait_minutes: 10.0,
            termination_wait_minutes: 5.0,
            ..settings()
        };
        let mut d = deployment(&[], Routing::Canary(20.0, 1.0), s);
        advance(&mut d, &Facts::default(), |_| false, 0.0, 60.0);
        advance(&mut d, &ready(), |_| false, 1.0, 60.0);
        assert_eq!(d.status, Status::Ready, "waiting for ContinueDeployment");
        assert_eq!(d.phase, Phase::ReadyWait);
        advance(&mut d, &ready(), |_| false, 300.0, 60.0);
        assert_eq!(d.status, Status::Ready);
        d.ready_released = true;
        advance(&mut d, &ready(), |_| false, 301.0, 60.0);
        assert_eq!((d.status, d.green_weight), (Status::InProgress, 20.0));
        advance(&mut d, &ready(), |_| false, 361.0, 60.0);
        assert_eq!((d.status, d.green_weight), (Status::Baking, 100.0));
        let o = advance(&mut d, &ready(), |_| false, 400.0, 60.0);
        assert!(o.effects.is_empty(), "the termination wait is 5 minutes");
        d.termination_released = true;
        let o = advance(&mut d, &ready(), |_| false, 401.0, 60.0);
        assert_eq!(
            o.effects,
            vec![Effect::Promote],
            "released by ContinueDeployment"
        );
        assert_eq!(d.status, Status::Succeeded);

        let s = Settings {
            ready_stop: true,
            ready_wait_minutes: 1.0,
            ..settings()
        };
        let mut d = deployment(&[], Routing::AllAtOnce, s);
        advance(&mut d, &Facts::default(), |_| false, 0.0, 60.0);
        advance(&mut d, &ready(), |_| false, 1.0, 60.0);
        let o = advance(&mut d, &ready(), |_| false, 61.0, 60.0);
        assert_eq!(o.failure.unwrap().0, "TIMEOUT");
    }

    #[test]
    fn a_rollback_reroutes_traffic_and_drops_the_replacement() {
        let mut d = deployment(&[("BeforeInstall", "f")], Routing::AllAtOnce, settings());
        d.rollback_of = Some("d-OTHER0000".into());
        d.green = Some("ecs-svc/2".into());
        d.green_weight = 100.0;
        let o = advance(&mut d, &Facts::default(), |_| true, 1.0, 60.0);
        assert_eq!(o.effects, vec![Effect::DropGreen]);
        assert_eq!((d.status, d.green_weight), (Status::Succeeded, 0.0));
        assert_eq!(statuses(&d)[6], "Succeeded");
        assert_eq!(statuses(&d)[0], "Skipped");
    }
}
