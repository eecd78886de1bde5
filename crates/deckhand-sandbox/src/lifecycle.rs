//! The lifecycle of a BLUE_GREEN, LINEAR or CANARY service deployment: the stages it walks
//! through, its traffic weights, hook runs and rollback, as pure functions of time and of what
//! the tasks show.

use serde_json::{json, Value};

use crate::strategy::{Config, Hook, HookAction, Kind, Stage};
use crate::Time;

/// One step of a deployment's walk: a stage, the traffic it sets, and how long it lasts at
/// least (minutes, before the time scale).
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub stage: Stage,
    pub production_weight: Option<f64>,
    pub test_weight: Option<f64>,
    pub wait_minutes: u32,
}

fn step(stage: Stage) -> Step {
    Step {
        stage,
        production_weight: None,
        test_weight: None,
        wait_minutes: 0,
    }
}

/// The stages a BLUE_GREEN, LINEAR or CANARY deployment goes through, in order;
/// `reconcile` when more than one service revision was active as it started.
pub fn steps(c: &Config, reconcile: bool) -> Vec<Step> {
    let mut out = Vec::new();
    if reconcile {
        out.push(step(Stage::ReconcileService));
    }
    out.push(step(Stage::PreScaleUp));
    out.push(step(Stage::ScaleUp));
    out.push(step(Stage::PostScaleUp));
    out.push(Step {
        test_weight: Some(100.0),
        ..step(Stage::TestTrafficShift)
    });
    out.push(step(Stage::PostTestTrafficShift));
    let shifts: Vec<(f64, u32)> = match (c.kind, c.linear, c.canary) {
        (Kind::Linear, Some((p, bake)), _) => {
            let mut w = Vec::new();
            let mut k = 1.0;
            loop {
                let weight = ((p * k) * 10.0).round() / 10.0;
                if weight >= 100.0 {
                    w.push((100.0, 0));
                    break;
                }
                w.push((weight, bake));
                k += 1.0;
            }
            w
        }
        (Kind::Canary, _, Some((p, bake))) if p < 100.0 => vec![(p, bake), (100.0, 0)],
        _ => vec![(100.0, 0)],
    };
    for (weight, bake) in shifts {
        out.push(step(Stage::PreProductionTrafficShift));
        out.push(Step {
            production_weight: Some(weight),
            wait_minutes: bake,
            ..step(Stage::ProductionTrafficShift)
        });
    }
    out.push(step(Stage::PostProductionTrafficShift));
    out.push(Step {
        wait_minutes: c.bake_minutes,
        ..step(Stage::BakeTime)
    });
    out.push(step(Stage::CleanUp));
    out
}

/// `lifecycleHookDetails[].status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookStatus {
    AwaitingAction,
    Succeeded,
    Failed,
    TimedOut,
}

impl HookStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            HookStatus::AwaitingAction => "AWAITING_ACTION",
            HookStatus::Succeeded => "SUCCEEDED",
            HookStatus::Failed => "FAILED",
            HookStatus::TimedOut => "TIMED_OUT",
        }
    }
}

/// One run of a lifecycle hook at a stage.
#[derive(Debug, Clone, PartialEq)]
pub struct HookRun {
    pub id: String,
    /// The step it belongs to.
    pub step: usize,
    pub pause: bool,
    pub target_arn: Option<String>,
    pub status: HookStatus,
    pub expires_at: Time,
    pub timeout_action: HookAction,
}

impl HookRun {
    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "hookId": self.id,
            "targetType": if self.pause { "PAUSE" } else { "AWS_LAMBDA" },
            "status": self.status.as_str(),
            "expiresAt": self.expires_at,
            "timeoutAction": self.timeout_action.as_str(),
        });
        if let Some(a) = &self.target_arn {
            v["targetArn"] = json!(a);
        }
        v
    }
}

/// A rollback of a strategy deployment: traffic goes back to the source revision at once,
/// then the green tasks stop.
#[derive(Debug, Clone, PartialEq)]
pub struct Rollback {
    pub reason: String,
    pub started_at: Time,
    /// False while ROLLBACK_REQUESTED (StopServiceDeployment), until the next tick starts it.
    pub started: bool,
    /// Every green task has stopped.
    pub done: bool,
}

/// Where a BLUE_GREEN, LINEAR or CANARY deployment is.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    pub steps: Vec<Step>,
    pub index: usize,
    pub entered_at: Time,
    pub hooks: Vec<HookRun>,
    pub production_weight: f64,
    pub test_weight: f64,
    /// The deployment whose tasks serve production until the shift (the blue one).
    pub source: Option<String>,
    pub rollback: Option<Rollback>,
    /// Why it stopped without a rollback (superseded, or failed with rollback off).
    pub stopped: Option<String>,
    pub finished: bool,
    /// The first stage has been entered (its hooks started) by [`advance`].
    pub entered: bool,
}

impl Progress {
    pub fn new(steps: Vec<Step>, source: Option<String>, now: Time) -> Progress {
        Progress {
            steps,
            index: 0,
            entered_at: now,
            hooks: Vec::new(),
            production_weight: 0.0,
            test_weight: 0.0,
            source,
            rollback: None,
            stopped: None,
            finished: false,
            entered: false,
        }
    }

    pub fn stage(&self) -> Stage {
        self.steps
            .get(self.index)
            .map(|s| s.stage)
            .unwrap_or(Stage::CleanUp)
    }

    /// Still moving forward: no rollback, not stopped, not finished.
    pub fn active(&self) -> bool {
        self.rollback.is_none() && self.stopped.is_none() && !self.finished
    }

    /// Green tasks are wanted from SCALE_UP on.
    pub fn scaled_up(&self) -> bool {
        self.active() && self.stage() >= Stage::ScaleUp
    }

    /// The blue tasks go in CLEAN_UP.
    pub fn cleaning_up(&self) -> bool {
        self.active() && self.stage() == Stage::CleanUp
    }

    /// The PAUSE hook awaiting action with this id.
    pub fn awaiting(&mut self, hook_id: &str) -> Option<&mut HookRun> {
        self.hooks
            .iter_mut()
            .find(|h| h.id == hook_id && h.status == HookStatus::AwaitingAction)
    }

    /// `(status, statusReason)` for DescribeServiceDeployments.
    pub fn status(&self) -> (&'static str, String) {
        if let Some(r) = &self.rollback {
            return match (r.started, r.done) {
                (false, _) => ("ROLLBACK_REQUESTED", r.reason.clone()),
                (true, false) => ("ROLLBACK_IN_PROGRESS", r.reason.clone()),
                (true, true) => ("ROLLBACK_SUCCESSFUL", r.reason.clone()),
            };
        }
        if let Some(why) = &self.stopped {
            return ("STOPPED", why.clone());
        }
        if self.finished {
            return ("SUCCESSFUL", "Service deployment completed.".into());
        }
        if !self.entered {
            return ("PENDING", "Service deployment has not started.".into());
        }
        (
            "IN_PROGRESS",
            format!("Service deployment is in {}.", self.stage().as_str()),
        )
    }
}

/// What the tasks show this tick, for [`advance`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Facts {
    /// Every green task wanted is running and healthy.
    pub green_ready: bool,
    /// No task of another deployment is left.
    pub others_gone: bool,
    /// No task is left but the green and the blue ones (a superseded deployment's are gone).
    pub strays_gone: bool,
}

/// What [`advance`] decided.
#[derive(Debug, Clone, PartialEq)]
pub enum Move {
    Stay,
    /// Entered the stage at this index.
    Entered(Stage),
    /// Past CLEAN_UP: the deployment succeeded.
    Finished,
    /// A hook timed out with ROLLBACK.
    Rollback(String),
}

/// Moves an active deployment along by at most one stage. `minute` is how many seconds a
/// minute lasts under the time scale; `hooks` the configuration's; `new_id` names hook runs.
pub fn advance(
    p: &mut Progress,
    hooks: &[Hook],
    facts: Facts,
    now: Time,
    minute: f64,
    mut new_id: impl FnMut() -> String,
) -> Move {
    if !p.active() {
        return Move::Stay;
    }
    if !p.entered {
        p.entered = true;
        return enter(p, hooks, now, minute, &mut new_id);
    }
    // Hooks of this stage: a timed-out one takes its timeout action.
    let mut waiting = false;
    for h in p.hooks.iter_mut().filter(|h| h.step == p.index) {
        if h.status != HookStatus::AwaitingAction {
            continue;
        }
        if now >= h.expires_at {
            h.status = HookStatus::TimedOut;
            if h.timeout_action == HookAction::Rollback {
                return Move::Rollback(format!(
                    "The lifecycle hook {} timed out at {}.",
                    h.id,
                    p.steps[p.index].stage.as_str()
                ));
            }
        } else {
            waiting = true;
        }
    }
    if waiting {
        return Move::Stay;
    }
    let step = &p.steps[p.index];
    let ready = match step.stage {
        Stage::ReconcileService => facts.strays_gone,
        Stage::ScaleUp => facts.green_ready,
        Stage::CleanUp => facts.others_gone,
        _ => true,
    };
    if !ready || now - p.entered_at < f64::from(step.wait_minutes) * minute {
        return Move::Stay;
    }
    if p.index + 1 >= p.steps.len() {
        p.finished = true;
        return Move::Finished;
    }
    p.index += 1;
    enter(p, hooks, now, minute, &mut new_id)
}

/// Enters the stage at `p.index`: its traffic weights, and a run of each hook it has.
fn enter(
    p: &mut Progress,
    hooks: &[Hook],
    now: Time,
    minute: f64,
    new_id: &mut impl FnMut() -> String,
) -> Move {
    p.entered_at = now;
    let step = &p.steps[p.index];
    if let Some(w) = step.production_weight {
        p.production_weight = w;
    }
    if let Some(w) = step.test_weight {
        p.test_weight = w;
    }
    for h in hooks.iter().filter(|h| h.stages.contains(&step.stage)) {
        p.hooks.push(HookRun {
            id: if h.pause {
                format!("ecs-pause-{}", new_id())
            } else {
                format!("ecs-lambda-{}", new_id())
            },
            step: p.index,
            pause: h.pause,
            target_arn: h.target_arn.clone(),
            status: if h.pause {
                HookStatus::AwaitingAction
            } else {
                HookStatus::Succeeded
            },
            expires_at: now + f64::from(h.timeout_minutes) * minute,
            timeout_action: h.timeout_action,
        });
    }
    Move::Entered(step.stage)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::read;

    fn config(v: Value) -> Result<Config, String> {
        read(&v, &Config::default())
    }

    fn names(steps: &[Step]) -> Vec<&'static str> {
        steps.iter().map(|s| s.stage.as_str()).collect()
    }

    #[test]
    fn blue_green_walks_the_documented_stages_in_order() {
        let c = config(json!({"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 2})).unwrap();
        assert_eq!(
            names(&steps(&c, false)),
            [
                "PRE_SCALE_UP",
                "SCALE_UP",
                "POST_SCALE_UP",
                "TEST_TRAFFIC_SHIFT",
                "POST_TEST_TRAFFIC_SHIFT",
                "PRE_PRODUCTION_TRAFFIC_SHIFT",
                "PRODUCTION_TRAFFIC_SHIFT",
                "POST_PRODUCTION_TRAFFIC_SHIFT",
                "BAKE_TIME",
                "CLEAN_UP"
            ]
        );
        assert_eq!(steps(&c, true)[0].stage, Stage::ReconcileService);
        let bake = steps(&c, false)
            .into_iter()
            .find(|s| s.stage == Stage::BakeTime);
        assert_eq!(bake.unwrap().wait_minutes, 2);
    }

    #[test]
    fn linear_and_canary_shift_production_traffic_in_steps() {
        let weights = |c: &Config| -> Vec<(f64, u32)> {
            steps(c, false)
                .iter()
                .filter_map(|s| s.production_weight.map(|w| (w, s.wait_minutes)))
                .collect()
        };
        let cases = [
            (
                json!({"strategy": "LINEAR", "linearConfiguration": {"stepPercent": 30.0, "stepBakeTimeInMinutes": 1}}),
                vec![(30.0, 1), (60.0, 1), (90.0, 1), (100.0, 0)],
            ),
            (
                json!({"strategy": "LINEAR", "linearConfiguration": {"stepPercent": 50.0, "stepBakeTimeInMinutes": 2}}),
                vec![(50.0, 2), (100.0, 0)],
            ),
            (
                json!({"strategy": "CANARY", "canaryConfiguration": {"canaryPercent": 10.0, "canaryBakeTimeInMinutes": 3}}),
                vec![(10.0, 3), (100.0, 0)],
            ),
            (json!({"strategy": "CANARY"}), vec![(5.0, 10), (100.0, 0)]),
            (
                json!({"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 0}),
                vec![(100.0, 0)],
            ),
        ];
        for (cfg, want) in cases {
            assert_eq!(weights(&config(cfg.clone()).unwrap()), want, "{cfg}");
        }
    }

    fn ids() -> impl FnMut() -> String {
        let mut n = 0;
        move || {
            n += 1;
            n.to_string()
        }
    }

    #[test]
    fn scale_up_waits_for_healthy_green_tasks_and_bake_time_for_the_clock() {
        let c = config(json!({"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 1})).unwrap();
        let mut p = Progress::new(steps(&c, false), Some("blue".into()), 0.0);
        let not_ready = Facts {
            green_ready: false,
            others_gone: false,
            strays_gone: true,
        };
        let ready = Facts {
            green_ready: true,
            others_gone: false,
            strays_gone: true,
        };
        let mut ids = ids();
        assert_eq!(
            advance(&mut p, &[], not_ready, 0.0, 6.0, &mut ids),
            Move::Entered(Stage::PreScaleUp)
        );
        assert!(!p.scaled_up(), "no green task before SCALE_UP");
        assert_eq!(
            advance(&mut p, &[], not_ready, 0.0, 6.0, &mut ids),
            Move::Entered(Stage::ScaleUp)
        );
        assert!(p.scaled_up());
        assert_eq!(
            advance(&mut p, &[], not_ready, 1.0, 6.0, &mut ids),
            Move::Stay
        );
        let mut t = 2.0;
        while p.stage() != Stage::BakeTime {
            assert_ne!(advance(&mut p, &[], ready, t, 6.0, &mut ids), Move::Stay);
            t += 0.1;
        }
        assert_eq!(p.production_weight, 100.0);
        assert_eq!(p.test_weight, 100.0);
        let entered = p.entered_at;
        assert_eq!(
            advance(&mut p, &[], ready, entered + 5.9, 6.0, &mut ids),
            Move::Stay
        );
        assert_eq!(
            advance(&mut p, &[], ready, entered + 6.0, 6.0, &mut ids),
            Move::Entered(Stage::CleanUp)
        );
        assert!(p.cleaning_up());
        assert_eq!(
            advance(&mut p, &[], ready, 100.0, 6.0, &mut ids),
            Move::Stay,
            "blue tasks left"
        );
        let gone = Facts {
            green_ready: true,
            others_gone: true,
            strays_gone: true,
        };
        assert_eq!(
            advance(&mut p, &[], gone, 100.0, 6.0, &mut ids),
            Move::Finished
        );
        assert_eq!(p.status().0, "SUCCESSFUL");
    }

    #[test]
    fn a_pause_hook_holds_its_stage_until_acted_on_or_timed_out() {
        let c = config(json!({"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 0, "lifecycleHooks": [
            {"targetType": "PAUSE", "lifecycleStages": ["PRE_SCALE_UP"], "timeoutConfiguration": {"timeoutInMinutes": 1}}
        ]}))
        .unwrap();
        let facts = Facts {
            green_ready: true,
            others_gone: true,
            strays_gone: true,
        };
        let mut p = Progress::new(steps(&c, true), None, 0.0);
        let mut ids = ids();
        assert_eq!(
            advance(&mut p, &c.hooks, facts, 0.0, 6.0, &mut ids),
            Move::Entered(Stage::ReconcileService)
        );
        assert!(p.hooks.is_empty());
        assert_eq!(
            advance(&mut p, &c.hooks, facts, 0.0, 6.0, &mut ids),
            Move::Entered(Stage::PreScaleUp)
        );
        assert_eq!(p.hooks.len(), 1);
        assert_eq!(p.hooks[0].status, HookStatus::AwaitingAction);
        assert!(p.hooks[0].id.starts_with("ecs-pause-"));
        assert_eq!(p.hooks[0].expires_at, 6.0);
        assert_eq!(
            advance(&mut p, &c.hooks, facts, 3.0, 6.0, &mut ids),
            Move::Stay
        );
        let id = p.hooks[0].id.clone();
        p.awaiting(&id).unwrap().status = HookStatus::Succeeded;
        assert_eq!(
            advance(&mut p, &c.hooks, facts, 3.0, 6.0, &mut ids),
            Move::Entered(Stage::ScaleUp)
        );

        // A CONTINUE timeout moves on by itself.
        let mut on = c.clone();
        on.hooks[0].timeout_action = HookAction::Continue;
        let mut p = Progress::new(steps(&on, false), None, 0.0);
        assert_eq!(
            advance(&mut p, &on.hooks, facts, 0.0, 6.0, &mut ids),
            Move::Entered(Stage::PreScaleUp),
            "a hook at the first stage runs too"
        );
        assert_eq!(p.hooks.len(), 1);
        assert_eq!(
            advance(&mut p, &on.hooks, facts, 5.0, 6.0, &mut ids),
            Move::Stay
        );
        assert_eq!(
            advance(&mut p, &on.hooks, facts, 6.0, 6.0, &mut ids),
            Move::Entered(Stage::ScaleUp)
        );
        assert_eq!(p.hooks[0].status, HookStatus::TimedOut);

        // Unanswered, the default timeout action rolls back.
        let mut p = Progress::new(steps(&c, false), None, 0.0);
        advance(&mut p, &c.hooks, facts, 0.0, 6.0, &mut ids);
        assert!(matches!(
            advance(&mut p, &c.hooks, facts, 6.0, 6.0, &mut ids),
            Move::Rollback(_)
        ));
        assert_eq!(p.hooks[0].status, HookStatus::TimedOut);
    }

    #[test]
    fn statuses_follow_rollbacks_and_stops() {
        let mut p = Progress::new(vec![step(Stage::PreScaleUp)], None, 0.0);
        assert_eq!(p.status().0, "PENDING", "until its first stage is entered");
        p.entered = true;
        assert_eq!(p.status().0, "IN_PROGRESS");
        p.rollback = Some(Rollback {
            reason: "r".into(),
            started_at: 0.0,
            started: false,
            done: false,
        });
        assert_eq!(p.status().0, "ROLLBACK_REQUESTED");
        p.rollback.as_mut().unwrap().started = true;
        assert_eq!(p.status().0, "ROLLBACK_IN_PROGRESS");
        p.rollback.as_mut().unwrap().done = true;
        assert_eq!(p.status().0, "ROLLBACK_SUCCESSFUL");
        let mut p = Progress::new(vec![step(Stage::PreScaleUp)], None, 0.0);
        p.stopped = Some("Superseded".into());
        assert_eq!(p.status(), ("STOPPED", "Superseded".into()));
        assert!(!p.active());
    }
}
