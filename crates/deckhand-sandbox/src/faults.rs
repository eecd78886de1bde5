//! Fault injection for reliability tests: latency, throttling, server errors, dropped
//! connections and lost answers on API calls, for every operation or only some, settable at
//! start or through `/_sandbox/faults`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The faults in force. Rates are probabilities from 0 to 1 per API call.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Added before every API answer, in milliseconds.
    pub latency_ms: u64,
    /// Share of calls answered with ThrottlingException.
    pub throttle_rate: f64,
    /// Share of calls answered with HTTP 500.
    pub error_rate: f64,
    /// Share of calls whose connection is closed with no answer; the call is not applied.
    pub drop_rate: f64,
    /// Share of calls that are applied, and whose connection is then closed with no answer:
    /// the change happened, but the client cannot tell it from a dropped call.
    pub lost_answer_rate: f64,
    /// The operations the faults apply to (`UpdateService`, `DescribeServices`, …, as named
    /// in `X-Amz-Target` or STS's `Action`); empty: every API call.
    pub operations: Vec<String>,
}

/// What happens to one API call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    Serve,
    Throttle,
    ServerError,
    /// Closed before it is applied.
    Drop,
    /// Applied, then closed before the answer.
    LoseAnswer,
}

impl Faults {
    /// Checks the rates are probabilities and the operations look like operation names.
    pub fn validate(&self) -> Result<(), String> {
        let rates = [
            ("throttle_rate", self.throttle_rate),
            ("error_rate", self.error_rate),
            ("drop_rate", self.drop_rate),
            ("lost_answer_rate", self.lost_answer_rate),
        ];
        for (name, rate) in rates {
            if !(0.0..=1.0).contains(&rate) {
                return Err(format!("{name} must be between 0 and 1, not {rate}"));
            }
        }
        for op in &self.operations {
            let mut chars = op.chars();
            let named = chars.next().is_some_and(|c| c.is_ascii_uppercase())
                && chars.all(|c| c.is_ascii_alphanumeric());
            if !named {
                return Err(format!(
                    "{op:?} is not an operation name; use the API's own, e.g. \"UpdateService\""
                ));
            }
        }
        Ok(())
    }

    pub fn latency(&self) -> Duration {
        Duration::from_millis(self.latency_ms)
    }

    /// Whether the faults apply to a call of `operation`.
    pub fn applies_to(&self, operation: &str) -> bool {
        self.operations.is_empty() || self.operations.iter().any(|o| o == operation)
    }

    /// Decides a call's fate from one uniform draw in [0, 1) (pure): drops first, then lost
    /// answers, then server errors, then throttling (rates adding up to more than 1 leave the
    /// later ones less than their share).
    pub fn fate(&self, draw: f64) -> Fate {
        let mut edge = 0.0;
        for (rate, fate) in [
            (self.drop_rate, Fate::Drop),
            (self.lost_answer_rate, Fate::LoseAnswer),
            (self.error_rate, Fate::ServerError),
            (self.throttle_rate, Fate::Throttle),
        ] {
            edge += rate;
            if draw < edge {
                return fate;
            }
        }
        Fate::Serve
    }

    /// The fate of a call of `operation` (pure): [`Faults::fate`] when the faults apply to it,
    /// else served.
    pub fn fate_of(&self, operation: &str, draw: f64) -> Fate {
        if self.applies_to(operation) {
            self.fate(draw)
        } else {
            Fate::Serve
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_split_the_draw() {
        let f = Faults {
            drop_rate: 0.1,
            lost_answer_rate: 0.15,
            error_rate: 0.2,
            throttle_rate: 0.3,
            ..Faults::default()
        };
        assert_eq!(f.fate(0.0), Fate::Drop);
        assert_eq!(f.fate(0.05), Fate::Drop);
        assert_eq!(f.fate(0.1), Fate::LoseAnswer);
        assert_eq!(f.fate(0.2), Fate::LoseAnswer);
        assert_eq!(f.fate(0.25), Fate::ServerError);
        assert_eq!(f.fate(0.44), Fate::ServerError);
        assert_eq!(f.fate(0.45), Fate::Throttle);
        assert_eq!(f.fate(0.74), Fate::Throttle);
        assert_eq!(f.fate(0.76), Fate::Serve);
        assert_eq!(Faults::default().fate(0.0), Fate::Serve);
        let all = Faults {
            throttle_rate: 1.0,
            ..Faults::default()
        };
        assert_eq!(all.fate(0.999), Fate::Throttle);
        let lost = Faults {
            lost_answer_rate: 1.0,
            ..Faults::default()
        };
        assert_eq!(lost.fate(0.0), Fate::LoseAnswer);
        assert_eq!(lost.fate(0.999), Fate::LoseAnswer);
    }

    #[test]
    fn faults_can_be_limited_to_some_operations() {
        let f = Faults {
            lost_answer_rate: 1.0,
            operations: vec!["UpdateService".into()],
            ..Faults::default()
        };
        assert!(f.applies_to("UpdateService"));
        assert!(!f.applies_to("DescribeServices"));
        assert!(!f.applies_to("updateservice"), "names are exact");
        assert_eq!(f.fate_of("UpdateService", 0.5), Fate::LoseAnswer);
        assert_eq!(f.fate_of("DescribeServices", 0.5), Fate::Serve);
        let everywhere = Faults {
            drop_rate: 1.0,
            ..Faults::default()
        };
        assert!(everywhere.applies_to("GetCallerIdentity"));
        assert_eq!(everywhere.fate_of("ListTasks", 0.5), Fate::Drop);
    }

    #[test]
    fn rates_must_be_probabilities() {
        let bad = |f: Faults| f.validate().unwrap_err();
        assert!(bad(Faults {
            error_rate: 1.5,
            ..Faults::default()
        })
        .contains("error_rate"));
        assert!(bad(Faults {
            lost_answer_rate: -0.1,
            ..Faults::default()
        })
        .contains("lost_answer_rate"));
        for op in ["", "ECS.UpdateService", "updateService", "Update Service"] {
            assert!(
                bad(Faults {
                    operations: vec![op.into()],
                    ..Faults::default()
                })
                .contains("not an operation name"),
                "{op:?}"
            );
        }
        assert!(Faults {
            drop_rate: 0.5,
            lost_answer_rate: 0.5,
            operations: vec!["UpdateService".into(), "GetCallerIdentity".into()],
            ..Faults::default()
        }
        .validate()
        .is_ok());
    }

    #[test]
    fn the_control_endpoint_reads_and_writes_the_same_shape() {
        let f: Faults =
            serde_json::from_str(r#"{"lost_answer_rate": 1, "operations": ["UpdateService"]}"#)
                .unwrap();
        assert_eq!(f.lost_answer_rate, 1.0);
        assert_eq!(f.operations, ["UpdateService"]);
        let back: Faults = serde_json::from_str(&serde_json::to_string(&f).unwrap()).unwrap();
        assert_eq!(back, f);
        assert!(serde_json::from_str::<Faults>(r#"{"lose_rate": 1}"#).is_err());
    }
}
