//! What the runner does for a service's deployments on each tick besides placing tasks:
//! alarms watched, failed deployments rolled back or stopped, strategy rollbacks finished, and
//! BLUE_GREEN, LINEAR and CANARY deployments moved through their lifecycle stages.

use super::deployments;
use super::ecs;
use super::model::{Rollout, Service, State, Time};
use super::runner::event_id;
use super::scheduler;
use super::Options;

/// A deployment in progress whose alarms are enabled fails when one of its alarms is in
/// ALARM: rolled back with `rollback`, else stopped. Rollbacks are not watched.
pub(crate) fn watch_alarms(state: &mut State, cluster: &str, service: &str, now: Time) {
    let in_alarm: Vec<String> = state
        .alarms
        .iter()
        .filter(|(_, v)| v.as_str() == "ALARM")
        .map(|(k, _)| k.clone())
        .collect();
    let s = state
        .clusters
        .get_mut(cluster)
        .and_then(|c| c.services.get_mut(service))
        .expect("service");
    let Some(d) = s.primary() else { return };
    let watched = d.rollback_of.is_none()
        && match &d.progress {
            Some(p) => p.active() && p.stage() != crate::strategy::Stage::CleanUp,
            None => d.rollout == Rollout::InProgress,
        };
    let Some(alarms) = d.config.alarms.clone().filter(|a| a.enable && watched) else {
        return;
    };
    let triggered: Vec<String> = alarms
        .names
        .iter()
        .filter(|n| in_alarm.contains(n))
        .cloned()
        .collect();
    if triggered.is_empty() {
        return;
    }
    let id = d.id.clone();
    let strategy = d.progress.is_some();
    let reason = format!(
        "ECS deployment {id} failed: alarm(s) detected: {}.",
        triggered.join(", ")
    );
    if let Some(d) = s.deployments.iter_mut().find(|d| d.id == id) {
        d.triggered_alarms = triggered;
        d.updated_at = now;
    }
    let msg = format!("(service {service}) (deployment {id}) deployment failed: alarm detected.");
    s.push_event(event_id(), now, msg);
    fail(s, &id, &reason, alarms.rollback, strategy, now);
}

/// Fails deployment `id` of `s`: rolled back (`rollback`) or left stopped.
pub(crate) fn fail(
    s: &mut Service,
    id: &str,
    reason: &str,
    rollback: bool,
    strategy: bool,
    now: Time,
) {
    if strategy {
        let rolled = rollback && deployments::roll_back(s, id, reason, now, false);
        if !rolled {
            if let Some(d) = s.deployments.iter_mut().find(|d| d.id == id) {
                d.rollout = Rollout::Failed;
                d.rollout_reason = reason.to_string();
                d.updated_at = now;
                if let Some(p) = d.progress.as_mut().filter(|p| p.active()) {
                    p.stopped = Some(reason.to_string());
                }
            }
        }
        return;
    }
    let target = scheduler::rollback_target(s, id).map(str::to_string);
    if let Some(d) = s.deployments.iter_mut().find(|d| d.id == id) {
        d.rollout = Rollout::Failed;
        d.rollout_reason = reason.to_string();
        d.updated_at = now;
    }
    if let (true, Some(target)) = (rollback, target) {
        let new = ecs::start_deployment(s, &target, now, Some(id));
        let msg = format!("(service {}) rolling back to deployment {new}.", s.name);
        s.push_event(event_id(), now, msg);
    }
}

/// Strategy rollbacks: a requested one starts (ROLLBACK_IN_PROGRESS) and stops the green
/// tasks; it has succeeded once none is left.
pub(crate) fn finish_rollbacks(state: &mut State, cluster: &str, service: &str, now: Time) {
    let c = state.clusters.get_mut(cluster).expect("cluster");
    let s = c.services.get_mut(service).expect("service");
    let mut events = Vec::new();
    for d in s.history.iter_mut() {
        let Some(r) = d.progress.as_mut().and_then(|p| p.rollback.as_mut()) else {
            continue;
        };
        if r.done {
            continue;
        }
        r.started = true;
        let mut left = 0;
        for t in c
            .tasks
            .values_mut()
            .filter(|t| t.started_by == d.id && t.is_live())
        {
            left += 1;
            if t.desired_status != "STOPPED" {
                t.desired_status = "STOPPED".into();
                t.stopped_reason.get_or_insert(format!(
                    "Scaling activity initiated by (deployment {})",
                    d.id
                ));
                t.stop_code
                    .get_or_insert("ServiceSchedulerInitiated".into());
                t.failure_counted = true;
            }
        }
        if left == 0 {
            r.done = true;
            d.updated_at = now;
            events.push(format!(
                "(service {service}) (deployment {}) rollback completed.",
                d.id
            ));
        }
    }
    for e in events {
        s.push_event(event_id(), now, e);
    }
}

/// Moves a BLUE_GREEN, LINEAR or CANARY deployment through its lifecycle stages.
pub(crate) fn advance_strategy(
    options: &Options,
    s: &mut Service,
    facts: crate::lifecycle::Facts,
    now: Time,
) {
    use crate::lifecycle::{advance, HookStatus, Move};
    let service = s.name.clone();
    let minute = 60.0 * options.time_scale;
    let Some(d) = s
        .deployments
        .iter_mut()
        .find(|d| d.status == crate::model::DeploymentStatus::Primary)
    else {
        return;
    };
    let id = d.id.clone();
    let hooks = d.config.hooks.clone();
    let Some(p) = d.progress.as_mut() else { return };
    let before = p.hooks.len();
    let step = advance(p, &hooks, facts, now, minute, || super::random_hex(16));
    let paused: Vec<String> = p.hooks[before..]
        .iter()
        .filter(|h| h.status == HookStatus::AwaitingAction)
        .map(|h| h.id.clone())
        .collect();
    let stage = p.stage().as_str();
    if step != Move::Stay {
        d.updated_at = now;
    }
    for hook in paused {
        let msg = format!(
            "(service {service}) (deployment {id}) is paused at {stage}: lifecycle hook {hook} is awaiting action."
        );
        s.push_event(event_id(), now, msg);
    }
    match step {
        Move::Stay | Move::Entered(_) => {}
        Move::Rollback(reason) => fail(s, &id, &reason, true, true, now),
        Move::Finished => {
            let mut done = Vec::new();
            s.deployments.retain(|d| {
                let keep = d.id == id;
                if !keep {
                    done.push(d.clone());
                }
                keep
            });
            s.history.extend(done);
            if let Some(d) = s.deployments.iter_mut().find(|d| d.id == id) {
                d.rollout = Rollout::Completed;
                d.rollout_reason = format!("ECS deployment {id} completed.");
                d.updated_at = now;
            }
            s.push_event(
                event_id(),
                now,
                format!("(service {service}) (deployment {id}) deployment completed."),
            );
            s.push_event(
                event_id(),
                now,
                format!("(service {service}) has reached a steady state."),
            );
        }
    }
}
