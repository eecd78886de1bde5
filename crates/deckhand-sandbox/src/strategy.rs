//! ECS deployment strategies (ROLLING, BLUE_GREEN, LINEAR, CANARY) as the API reference
//! documents them: `deploymentConfiguration`'s strategy members, read, validated and written
//! back; the lifecycle itself is in [`crate::lifecycle`].

use serde_json::{json, Value};

/// `deploymentConfiguration.strategy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Kind {
    #[default]
    Rolling,
    BlueGreen,
    Linear,
    Canary,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Rolling => "ROLLING",
            Kind::BlueGreen => "BLUE_GREEN",
            Kind::Linear => "LINEAR",
            Kind::Canary => "CANARY",
        }
    }

    fn parse(s: &str) -> Option<Kind> {
        Some(match s {
            "ROLLING" => Kind::Rolling,
            "BLUE_GREEN" => Kind::BlueGreen,
            "LINEAR" => Kind::Linear,
            "CANARY" => Kind::Canary,
            _ => return None,
        })
    }
}

/// What a hook does when it times out, or what ContinueServiceDeployment asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookAction {
    Continue,
    Rollback,
}

impl HookAction {
    pub fn as_str(self) -> &'static str {
        match self {
            HookAction::Continue => "CONTINUE",
            HookAction::Rollback => "ROLLBACK",
        }
    }

    pub fn parse(s: &str) -> Option<HookAction> {
        match s {
            "CONTINUE" => Some(HookAction::Continue),
            "ROLLBACK" => Some(HookAction::Rollback),
            _ => None,
        }
    }
}

/// One `lifecycleHooks[]` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Hook {
    /// `PAUSE` or `AWS_LAMBDA` (the default; the sandbox treats a Lambda hook as succeeding).
    pub pause: bool,
    pub target_arn: Option<String>,
    pub role_arn: Option<String>,
    pub stages: Vec<Stage>,
    pub timeout_minutes: u32,
    pub timeout_action: HookAction,
}

/// `alarms`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Alarms {
    pub names: Vec<String>,
    pub enable: bool,
    pub rollback: bool,
}

/// The strategy part of a deployment configuration.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Config {
    pub kind: Kind,
    pub bake_minutes: u32,
    /// `linearConfiguration` (stepPercent, stepBakeTimeInMinutes), LINEAR only.
    pub linear: Option<(f64, u32)>,
    /// `canaryConfiguration` (canaryPercent, canaryBakeTimeInMinutes), CANARY only.
    pub canary: Option<(f64, u32)>,
    pub hooks: Vec<Hook>,
    pub alarms: Option<Alarms>,
}

/// The lifecycle stages of a service deployment, in the order the API reference lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    ReconcileService,
    PreScaleUp,
    ScaleUp,
    PostScaleUp,
    TestTrafficShift,
    PostTestTrafficShift,
    PreProductionTrafficShift,
    ProductionTrafficShift,
    PostProductionTrafficShift,
    BakeTime,
    CleanUp,
}

const STAGES: [(Stage, &str); 11] = [
    (Stage::ReconcileService, "RECONCILE_SERVICE"),
    (Stage::PreScaleUp, "PRE_SCALE_UP"),
    (Stage::ScaleUp, "SCALE_UP"),
    (Stage::PostScaleUp, "POST_SCALE_UP"),
    (Stage::TestTrafficShift, "TEST_TRAFFIC_SHIFT"),
    (Stage::PostTestTrafficShift, "POST_TEST_TRAFFIC_SHIFT"),
    (
        Stage::PreProductionTrafficShift,
        "PRE_PRODUCTION_TRAFFIC_SHIFT",
    ),
    (Stage::ProductionTrafficShift, "PRODUCTION_TRAFFIC_SHIFT"),
    (
        Stage::PostProductionTrafficShift,
        "POST_PRODUCTION_TRAFFIC_SHIFT",
    ),
    (Stage::BakeTime, "BAKE_TIME"),
    (Stage::CleanUp, "CLEAN_UP"),
];

impl Stage {
    pub fn as_str(self) -> &'static str {
        STAGES
            .iter()
            .find(|(s, _)| *s == self)
            .map(|(_, n)| *n)
            .unwrap_or_default()
    }

    fn parse(s: &str) -> Option<Stage> {
        STAGES.iter().find(|(_, n)| *n == s).map(|(st, _)| *st)
    }

    /// Stages a lifecycle hook may name (`DeploymentLifecycleHookStage`).
    fn hookable(self) -> bool {
        !matches!(self, Stage::ScaleUp | Stage::BakeTime | Stage::CleanUp)
    }
}

fn minutes(v: &Value, name: &str, default: u32) -> Result<u32, String> {
    match v {
        Value::Null => Ok(default),
        v => match v.as_u64() {
            Some(n) if n <= 1440 => Ok(n as u32),
            _ => Err(format!(
                "{name} must be a whole number of minutes from 0 to 1440, not {v}"
            )),
        },
    }
}

fn percent(v: &Value, name: &str, default: f64, low: f64) -> Result<f64, String> {
    match v {
        Value::Null => Ok(default),
        v => match v.as_f64() {
            Some(p)
                if (low..=100.0).contains(&p) && ((p * 10.0).round() - p * 10.0).abs() < 1e-6 =>
            {
                Ok(p)
            }
            _ => Err(format!(
                "{name} must be a multiple of 0.1 from {low:.1} to 100.0, not {v}"
            )),
        },
    }
}

/// Reads the strategy members of `deploymentConfiguration` over `current` (what the service
/// had; members not given are kept). Errors are InvalidParameterException messages.
pub fn read(cfg: &Value, current: &Config) -> Result<Config, String> {
    let mut c = current.clone();
    if let Some(s) = cfg.get("strategy").filter(|v| !v.is_null()) {
        c.kind = s.as_str().and_then(Kind::parse).ok_or_else(|| {
            format!("strategy must be ROLLING, BLUE_GREEN, LINEAR or CANARY, not {s}")
        })?;
    }
    if c.kind == Kind::BlueGreen
        && current.kind != Kind::BlueGreen
        && cfg["bakeTimeInMinutes"].is_null()
    {
        return Err("bakeTimeInMinutes is required with the BLUE_GREEN strategy".into());
    }
    if !cfg["bakeTimeInMinutes"].is_null() {
        c.bake_minutes = minutes(&cfg["bakeTimeInMinutes"], "bakeTimeInMinutes", 0)?;
    }
    let linear = &cfg["linearConfiguration"];
    if linear.is_object() {
        if c.kind != Kind::Linear {
            return Err("linearConfiguration is only valid with the LINEAR strategy".into());
        }
        c.linear = Some((
            percent(
                &linear["stepPercent"],
                "linearConfiguration.stepPercent",
                10.0,
                3.0,
            )?,
            minutes(
                &linear["stepBakeTimeInMinutes"],
                "linearConfiguration.stepBakeTimeInMinutes",
                6,
            )?,
        ));
    }
    let canary = &cfg["canaryConfiguration"];
    if canary.is_object() {
        if c.kind != Kind::Canary {
            return Err("canaryConfiguration is only valid with the CANARY strategy".into());
        }
        c.canary = Some((
            percent(
                &canary["canaryPercent"],
                "canaryConfiguration.canaryPercent",
                5.0,
                0.1,
            )?,
            minutes(
                &canary["canaryBakeTimeInMinutes"],
                "canaryConfiguration.canaryBakeTimeInMinutes",
                10,
            )?,
        ));
    }
    if c.kind != Kind::Linear {
        c.linear = None;
    } else if c.linear.is_none() {
        c.linear = Some((10.0, 6));
    }
    if c.kind != Kind::Canary {
        c.canary = None;
    } else if c.canary.is_none() {
        c.canary = Some((5.0, 10));
    }
    if let Some(hooks) = cfg.get("lifecycleHooks").filter(|v| !v.is_null()) {
        let hooks = hooks.as_array().ok_or("lifecycleHooks must be a list")?;
        c.hooks = hooks.iter().map(read_hook).collect::<Result<_, _>>()?;
    }
    if c.kind == Kind::Rolling && !c.hooks.is_empty() {
        return Err(
            "lifecycleHooks are only valid with the BLUE_GREEN, LINEAR or CANARY strategy".into(),
        );
    }
    let alarms = &cfg["alarms"];
    if alarms.is_object() {
        let names = alarms["alarmNames"]
            .as_array()
            .ok_or("alarms.alarmNames is required")?
            .iter()
            .map(|n| {
                n.as_str()
                    .map(str::to_string)
                    .ok_or("alarms.alarmNames are strings")
            })
            .collect::<Result<Vec<_>, _>>()?;
        let flag = |name: &str| {
            alarms[name]
                .as_bool()
                .ok_or_else(|| format!("alarms.{name} is required"))
        };
        c.alarms = Some(Alarms {
            names,
            enable: flag("enable")?,
            rollback: flag("rollback")?,
        });
    }
    Ok(c)
}

fn read_hook(h: &Value) -> Result<Hook, String> {
    let pause = match h["targetType"].as_str().unwrap_or("AWS_LAMBDA") {
        "PAUSE" => true,
        "AWS_LAMBDA" => false,
        other => {
            return Err(format!(
                "lifecycleHooks.targetType must be AWS_LAMBDA or PAUSE, not {other}"
            ))
        }
    };
    let target_arn = h["hookTargetArn"].as_str().map(str::to_string);
    if !pause && target_arn.is_none() {
        return Err("lifecycleHooks.hookTargetArn is required for an AWS_LAMBDA hook".into());
    }
    let stages: Vec<Stage> = h["lifecycleStages"]
        .as_array()
        .filter(|a| !a.is_empty())
        .ok_or("lifecycleHooks.lifecycleStages is required")?
        .iter()
        .map(|s| {
            s.as_str()
                .and_then(Stage::parse)
                .filter(|s| s.hookable())
                .ok_or_else(|| {
                    format!("lifecycleHooks.lifecycleStages: {s} is not a lifecycle hook stage")
                })
        })
        .collect::<Result<_, _>>()?;
    if pause
        && stages
            .iter()
            .any(|s| matches!(s, Stage::TestTrafficShift | Stage::ProductionTrafficShift))
    {
        return Err(
            "PAUSE hooks cannot be configured at TEST_TRAFFIC_SHIFT or PRODUCTION_TRAFFIC_SHIFT"
                .into(),
        );
    }
    let timeout = &h["timeoutConfiguration"];
    let timeout_minutes = match &timeout["timeoutInMinutes"] {
        Value::Null => 1440,
        v => v
            .as_u64()
            .filter(|n| (1..=1440).contains(n))
            .ok_or_else(|| {
                format!("timeoutConfiguration.timeoutInMinutes must be 1 to 1440, not {v}")
            })? as u32,
    };
    let timeout_action = match timeout["action"].as_str() {
        None => HookAction::Rollback,
        Some(a) => HookAction::parse(a).ok_or_else(|| {
            format!("timeoutConfiguration.action must be CONTINUE or ROLLBACK, not {a}")
        })?,
    };
    Ok(Hook {
        pause,
        target_arn,
        role_arn: h["roleArn"].as_str().map(str::to_string),
        stages,
        timeout_minutes,
        timeout_action,
    })
}

/// Adds the strategy members to a `deploymentConfiguration` JSON object.
pub fn write(c: &Config, out: &mut Value) {
    out["strategy"] = json!(c.kind.as_str());
    if c.kind != Kind::Rolling {
        out["bakeTimeInMinutes"] = json!(c.bake_minutes);
    }
    if let Some((p, b)) = c.linear {
        out["linearConfiguration"] = json!({"stepPercent": p, "stepBakeTimeInMinutes": b});
    }
    if let Some((p, b)) = c.canary {
        out["canaryConfiguration"] = json!({"canaryPercent": p, "canaryBakeTimeInMinutes": b});
    }
    if !c.hooks.is_empty() {
        out["lifecycleHooks"] = c
            .hooks
            .iter()
            .map(|h| {
                let mut v = json!({
                    "targetType": if h.pause { "PAUSE" } else { "AWS_LAMBDA" },
                    "lifecycleStages": h.stages.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
                    "timeoutConfiguration": {"timeoutInMinutes": h.timeout_minutes, "action": h.timeout_action.as_str()},
                });
                if let Some(a) = &h.target_arn {
                    v["hookTargetArn"] = json!(a);
                }
                if let Some(a) = &h.role_arn {
                    v["roleArn"] = json!(a);
                }
                v
            })
            .collect();
    }
    if let Some(a) = &c.alarms {
        out["alarms"] = json!({"alarmNames": a.names, "enable": a.enable, "rollback": a.rollback});
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(v: Value) -> Result<Config, String> {
        read(&v, &Config::default())
    }

    #[test]
    fn configurations_are_validated_as_the_reference_says() {
        let bad = [
            json!({"strategy": "FAST"}),
            json!({"strategy": "BLUE_GREEN"}),
            json!({"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 1441}),
            json!({"strategy": "BLUE_GREEN", "linearConfiguration": {"stepPercent": 10.0}}),
            json!({"strategy": "LINEAR", "linearConfiguration": {"stepPercent": 2.0}}),
            json!({"strategy": "LINEAR", "linearConfiguration": {"stepPercent": 10.05}}),
            json!({"strategy": "CANARY", "canaryConfiguration": {"canaryBakeTimeInMinutes": -1}}),
            json!({"strategy": "BLUE_GREEN", "lifecycleHooks": [{"targetType": "PAUSE", "lifecycleStages": ["PRODUCTION_TRAFFIC_SHIFT"]}]}),
            json!({"strategy": "BLUE_GREEN", "lifecycleHooks": [{"targetType": "PAUSE", "lifecycleStages": ["BAKE_TIME"]}]}),
            json!({"strategy": "BLUE_GREEN", "lifecycleHooks": [{"lifecycleStages": ["POST_SCALE_UP"]}]}),
            json!({"strategy": "BLUE_GREEN", "lifecycleHooks": [{"targetType": "PAUSE", "lifecycleStages": []}]}),
            json!({"lifecycleHooks": [{"targetType": "PAUSE", "lifecycleStages": ["POST_SCALE_UP"]}]}),
            json!({"alarms": {"alarmNames": ["a"], "enable": true}}),
        ];
        for cfg in bad {
            assert!(config(cfg.clone()).is_err(), "{cfg} was accepted");
        }
        let c = config(json!({"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 0, "lifecycleHooks": [
            {"targetType": "PAUSE", "lifecycleStages": ["POST_SCALE_UP"], "timeoutConfiguration": {"timeoutInMinutes": 5, "action": "CONTINUE"}},
            {"hookTargetArn": "arn:aws:lambda:us-east-1:1:function:f", "lifecycleStages": ["PRE_SCALE_UP"]}
        ], "alarms": {"alarmNames": ["errors"], "enable": true, "rollback": true}}))
        .unwrap();
        assert_eq!(c.hooks[0].timeout_action, HookAction::Continue);
        assert_eq!(
            c.hooks[1].timeout_action,
            HookAction::Rollback,
            "the default"
        );
        assert_eq!(c.hooks[1].timeout_minutes, 1440);
        let mut out = json!({});
        write(&c, &mut out);
        assert_eq!(out["strategy"], "BLUE_GREEN");
        assert_eq!(out["lifecycleHooks"][0]["targetType"], "PAUSE");
        assert_eq!(out["lifecycleHooks"][1]["targetType"], "AWS_LAMBDA");
        assert_eq!(out["alarms"]["alarmNames"][0], "errors");
        assert_eq!(
            read(&json!({}), &c).unwrap(),
            c,
            "members not given are kept"
        );
    }
}
