//! ECS states as types: read from the SDK in one place, written back as the exact ECS strings.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A deployment's `status` in DescribeServices.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DeploymentStatus {
    /// The newest deployment: the one the service is moving to.
    Primary,
    /// An older deployment still running tasks.
    Active,
    /// A deployment whose tasks are all gone.
    Inactive,
    /// A value newer than this code (kept as ECS sent it; empty when ECS sent none).
    Other(String),
}

impl DeploymentStatus {
    /// The status of an SDK deployment.
    pub fn of(d: &aws_sdk_ecs::types::Deployment) -> Self {
        Self::from(d.status().unwrap_or_default())
    }

    /// The ECS string.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Primary => "PRIMARY",
            Self::Active => "ACTIVE",
            Self::Inactive => "INACTIVE",
            Self::Other(s) => s,
        }
    }
}

impl From<&str> for DeploymentStatus {
    fn from(s: &str) -> Self {
        match s {
            "PRIMARY" => Self::Primary,
            "ACTIVE" => Self::Active,
            "INACTIVE" => Self::Inactive,
            other => Self::Other(other.to_string()),
        }
    }
}

/// A deployment's `rolloutState` in DescribeServices.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RolloutState {
    InProgress,
    Completed,
    Failed,
    /// A value newer than this code, kept as ECS sent it.
    Other(String),
}

impl RolloutState {
    /// The rollout state of an SDK deployment; `None` on older APIs and some controllers.
    pub fn of(d: &aws_sdk_ecs::types::Deployment) -> Option<Self> {
        d.rollout_state().map(|r| Self::from(r.as_str()))
    }

    /// The ECS string.
    pub fn as_str(&self) -> &str {
        match self {
            Self::InProgress => "IN_PROGRESS",
            Self::Completed => "COMPLETED",
            Self::Failed => "FAILED",
            Self::Other(s) => s,
        }
    }
}

impl From<&str> for RolloutState {
    fn from(s: &str) -> Self {
        match s {
            "IN_PROGRESS" => Self::InProgress,
            "COMPLETED" => Self::Completed,
            "FAILED" => Self::Failed,
            other => Self::Other(other.to_string()),
        }
    }
}

macro_rules! ecs_string {
    ($t:ty) => {
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                Ok(Self::from(String::deserialize(d)?.as_str()))
            }
        }
    };
}

ecs_string!(DeploymentStatus);
ecs_string!(RolloutState);

/// The family of a task definition ARN or `family:revision` reference.
pub fn family_of(reference: &str) -> &str {
    let name = reference.rsplit('/').next().unwrap_or(reference);
    name.split(':').next().unwrap_or(name)
}

/// One deployment as DescribeServices shows it (and as `deckhand status` reports it).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DeploymentView {
    pub id: String,
    /// PRIMARY, ACTIVE or INACTIVE.
    pub status: DeploymentStatus,
    #[serde(rename = "task_definition_arn")]
    pub task_definition: String,
    /// IN_PROGRESS, COMPLETED, FAILED; absent on older APIs and some controllers.
    pub rollout_state: Option<RolloutState>,
    #[serde(rename = "rollout_state_reason")]
    pub rollout_reason: Option<String>,
    pub desired: i32,
    pub running: i32,
    pub pending: i32,
    /// ECS's count of this deployment's failed tasks (`failedTasks`).
    pub failed: i32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_as_the_ecs_strings() {
        let statuses = [
            ("PRIMARY", DeploymentStatus::Primary),
            ("ACTIVE", DeploymentStatus::Active),
            ("INACTIVE", DeploymentStatus::Inactive),
            ("DRAINING", DeploymentStatus::Other("DRAINING".into())),
            ("", DeploymentStatus::Other(String::new())),
        ];
        for (text, want) in statuses {
            assert_eq!(DeploymentStatus::from(text), want, "{text}");
            assert_eq!(want.to_string(), text);
            let json = serde_json::to_string(&want).unwrap();
            assert_eq!(json, format!("{text:?}"));
            assert_eq!(
                serde_json::from_str::<DeploymentStatus>(&json).unwrap(),
                want
            );
        }
        let states = [
            ("IN_PROGRESS", RolloutState::InProgress),
            ("COMPLETED", RolloutState::Completed),
            ("FAILED", RolloutState::Failed),
            ("PAUSED", RolloutState::Other("PAUSED".into())),
        ];
        for (text, want) in states {
            assert_eq!(RolloutState::from(text), want, "{text}");
            assert_eq!(want.to_string(), text);
            let json = serde_json::to_string(&want).unwrap();
            assert_eq!(json, format!("{text:?}"));
            assert_eq!(serde_json::from_str::<RolloutState>(&json).unwrap(), want);
        }
    }

    #[test]
    fn sdk_deployments_are_read_once() {
        let d = aws_sdk_ecs::types::Deployment::builder()
            .status("PRIMARY")
            .rollout_state(aws_sdk_ecs::types::DeploymentRolloutState::InProgress)
            .build();
        assert_eq!(DeploymentStatus::of(&d), DeploymentStatus::Primary);
        assert_eq!(RolloutState::of(&d), Some(RolloutState::InProgress));
        let bare = aws_sdk_ecs::types::Deployment::builder().build();
        assert_eq!(
            DeploymentStatus::of(&bare),
            DeploymentStatus::Other(String::new())
        );
        assert_eq!(RolloutState::of(&bare), None);
    }
}
