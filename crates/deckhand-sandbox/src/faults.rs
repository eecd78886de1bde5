//! Fault injection for reliability tests: latency, throttling, server errors and dropped
//! connections on API calls, settable at start or through `/_sandbox/faults`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The faults in force. Rates are probabilities from 0 to 1 per API call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Added before every API answer, in milliseconds.
    pub latency_ms: u64,
    /// Share of calls answered with ThrottlingException.
    pub throttle_rate: f64,
    /// Share of calls answered with HTTP 500.
    pub error_rate: f64,
    /// Share of calls whose connection is closed with no answer.
    pub drop_rate: f64,
}

/// What happens to one API call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    Serve,
    Throttle,
    ServerError,
    Drop,
}

impl Faults {
    /// Checks the rates are probabilities.
    pub fn validate(&self) -> Result<(), String> {
        for (name, rate) in [
            ("throttle_rate", self.throttle_rate),
            ("error_rate", self.error_rate),
            ("drop_rate", self.drop_rate),
        ] {
            if !(0.0..=1.0).contains(&rate) {
                return Err(format!("{name} must be between 0 and 1, not {rate}"));
            }
        }
        Ok(())
    }

    pub fn latency(&self) -> Duration {
        Duration::from_millis(self.latency_ms)
    }

    /// Decides a call's fate from one uniform draw in [0, 1) (pure): drops first, then
    /// server errors, then throttling.
    pub fn fate(&self, draw: f64) -> Fate {
        let mut edge = self.drop_rate;
        if draw < edge {
            return Fate::Drop;
        }
        edge += self.error_rate;
        if draw < edge {
            return Fate::ServerError;
        }
        edge += self.throttle_rate;
        if draw < edge {
            return Fate::Throttle;
        }
        Fate::Serve
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_split_the_draw() {
        let f = Faults {
            drop_rate: 0.1,
            error_rate: 0.2,
            throttle_rate: 0.3,
            latency_ms: 0,
        };
        assert_eq!(f.fate(0.05), Fate::Drop);
        assert_eq!(f.fate(0.25), Fate::ServerError);
        assert_eq!(f.fate(0.55), Fate::Throttle);
        assert_eq!(f.fate(0.61), Fate::Serve);
        assert_eq!(Faults::default().fate(0.0), Fate::Serve);
        let all = Faults {
            throttle_rate: 1.0,
            ..Faults::default()
        };
        assert_eq!(all.fate(0.999), Fate::Throttle);
    }

    #[test]
    fn rates_must_be_probabilities() {
        assert!(Faults {
            error_rate: 1.5,
            ..Faults::default()
        }
        .validate()
        .is_err());
        assert!(Faults {
            drop_rate: 0.5,
            ..Faults::default()
        }
        .validate()
        .is_ok());
    }
}
