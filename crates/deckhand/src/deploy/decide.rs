//! The deploy's riskiest choices, as pure functions with table tests: what to do with each
//! changed service once a deploy has failed, and which result and exit code an outcome is.

use crate::cli::RollbackMode;
use crate::error::Exit;

/// What the service's PRIMARY deployment is when a failed deploy is about to be undone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Primary<'a> {
    pub id: &'a str,
    pub task_definition: &'a str,
}

/// What to do with one service whose new revision failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Undo {
    /// ECS (its circuit breaker, or a person) is already taking it back to the target: watch
    /// that deployment instead of starting another.
    Follow { deployment: String },
    /// Someone else's deployment replaced ours: never roll back over it; a person decides.
    HandsOff { by: String },
    /// `--rollback never`: leave it on the new revision; a person decides.
    Leave,
    /// Start a deployment of the target revision.
    RollBack,
}

/// Decides how to undo a failed deploy on one service (pure). `ours` is the deployment
/// deckhand started (empty when its UpdateService's answer was lost), `new` the revision it
/// registered, `target` the revision that was live before.
pub fn undo(
    primary: Option<Primary<'_>>,
    ours: &str,
    new: &str,
    target: &str,
    mode: RollbackMode,
) -> Undo {
    use super::history::same_revision;
    match primary {
        Some(p) if same_revision(p.task_definition, target) => Undo::Follow {
            deployment: p.id.to_string(),
        },
        Some(p) if p.id != ours && !same_revision(p.task_definition, new) => Undo::HandsOff {
            by: p.id.to_string(),
        },
        _ if mode == RollbackMode::Never => Undo::Leave,
        _ => Undo::RollBack,
    }
}

/// The revision a deploy goes back to on failure (pure): the one the service runs, or, when a
/// deployment is still rolling out (`--take-over`), the revision of the deployment it is
/// replacing that still has tasks running — the last one known to run.
pub fn rollback_target(service: &crate::aws::ecs::ServiceView) -> &str {
    use crate::aws::types::DeploymentStatus;
    if super::verdict::busy(&service.deployments).is_none() {
        return &service.task_definition;
    }
    service
        .deployments
        .iter()
        .filter(|d| d.status == DeploymentStatus::Active && d.running > 0)
        .max_by_key(|d| d.running)
        .map_or(&service.task_definition, |d| d.task_definition.as_str())
}

/// How a deploy ended, in the words of its result object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Every service is stable on its new revision.
    Deployed,
    /// The deployments completed, but at least one service has desiredCount 0: no task ran, so
    /// nothing was verified. Exit 0, said loudly.
    Unverified,
    /// `--wait-until STAGE`: every service deployment reached that stage and goes on in ECS;
    /// nothing is verified yet. Exit 0.
    ReachedStage,
    /// It failed and every changed service is back on its target, stable.
    RolledBack,
    /// It failed and at least one service is not confirmed healthy.
    Failed,
}

impl Ending {
    /// The `result` field.
    pub fn result(self) -> &'static str {
        match self {
            Ending::Deployed => "deployed",
            Ending::Unverified => "unverified",
            Ending::ReachedStage => "reached-stage",
            Ending::RolledBack => "rolled-back",
            Ending::Failed => "failed",
        }
    }

    /// The exit code the README promises for it.
    pub fn exit(self) -> Exit {
        match self {
            Ending::Deployed | Ending::Unverified | Ending::ReachedStage => Exit::Success,
            Ending::RolledBack => Exit::RolledBack,
            Ending::Failed => Exit::NeedsPerson,
        }
    }
}

/// How a deploy whose deployments all completed ends (pure): deployed only when every service
/// ran tasks of its new revision.
pub fn after_success(any_without_tasks: bool, any_at_a_stage: bool) -> Ending {
    if any_at_a_stage {
        Ending::ReachedStage
    } else if any_without_tasks {
        Ending::Unverified
    } else {
        Ending::Deployed
    }
}

/// Where one service of a deploy stands at the end, for the result and for the person who
/// takes over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Standing {
    /// deployed | unverified | rolled-back | on-new-revision | not-confirmed | taken-over |
    /// unknown
    pub state: &'static str,
    /// What a person should do; empty when nothing.
    pub action: String,
}

/// What the service was seen to run at the end of a deploy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen<'a> {
    /// Stable on this revision, confirmed by watching.
    Confirmed(&'a str),
    /// Running this revision (its PRIMARY), not confirmed stable.
    Running(&'a str),
    /// It could not be read.
    Unreadable,
}

impl<'a> Seen<'a> {
    /// The revision it was seen on; empty when it could not be read.
    pub fn revision(self) -> &'a str {
        match self {
            Seen::Confirmed(td) | Seen::Running(td) => td,
            Seen::Unreadable => "",
        }
    }
}

/// Where a service stands (pure): `registered` is deckhand's new revision, `target` the one it
/// goes back to; `where_` names the service for the commands a person is told to run.
pub fn standing(seen: Seen<'_>, registered: &str, target: &str, where_: &str) -> Standing {
    use super::history::same_revision;
    let status = format!("deckhand status {where_}");
    if seen == Seen::Unreadable {
        return Standing {
            state: "unknown",
            action: format!("its state could not be read; check it with `{status}`"),
        };
    }
    let (td, confirmed) = (seen.revision(), matches!(seen, Seen::Confirmed(_)));
    let (state, action) = if same_revision(td, registered) {
        if confirmed {
            ("deployed", String::new())
        } else {
            (
                "on-new-revision",
                format!(
                    "it runs the new, unverified revision: roll it back with `deckhand rollback \
                     {where_} --to {}`",
                    super::watch::short(target)
                ),
            )
        }
    } else if same_revision(td, target) {
        if confirmed {
            ("rolled-back", String::new())
        } else {
            (
                "not-confirmed",
                format!(
                    "it is back on its previous revision, not confirmed stable; check it with \
                     `{status}`"
                ),
            )
        }
    } else {
        (
            "taken-over",
            format!(
                "another deployment put it on {}; check it with `{status}`",
                super::watch::short(td)
            ),
        )
    };
    Standing {
        state,
        action: action.to_string(),
    }
}

/// How a failed deploy ends (pure): rolled back (exit 3) only when every service that was
/// changed is confirmed back and stable and none was left alone, unreadable or in doubt;
/// anything else needs a person (exit 4).
pub fn after_failure(rollbacks_confirmed: bool, any_left: bool) -> Ending {
    if rollbacks_confirmed && !any_left {
        Ending::RolledBack
    } else {
        Ending::Failed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OURS: &str = "ecs-svc/2";
    const TARGET: &str = "arn:aws:ecs:us-east-1:1:task-definition/web:1";

    fn primary<'a>(id: &'a str, td: &'a str) -> Option<Primary<'a>> {
        Some(Primary {
            id,
            task_definition: td,
        })
    }

    #[test]
    fn a_failed_service_is_followed_left_or_rolled_back() {
        use RollbackMode::{Auto, Never};
        let cases = [
            // ECS's breaker is already going back to the target: follow it, whatever the mode.
            (
                primary("ecs-svc/3", "web:1"),
                Auto,
                Undo::Follow {
                    deployment: "ecs-svc/3".into(),
                },
            ),
            (
                primary("ecs-svc/3", TARGET),
                Never,
                Undo::Follow {
                    deployment: "ecs-svc/3".into(),
                },
            ),
            // Another pipeline's deployment of another revision: hands off.
            (
                primary("ecs-svc/9", "web:7"),
                Auto,
                Undo::HandsOff {
                    by: "ecs-svc/9".into(),
                },
            ),
            (
                primary("ecs-svc/9", "web:7"),
                Never,
                Undo::HandsOff {
                    by: "ecs-svc/9".into(),
                },
            ),
            // Ours is still primary: roll back, unless told never to.
            (primary(OURS, "web:2"), Auto, Undo::RollBack),
            (primary(OURS, "web:2"), Never, Undo::Leave),
            // No primary to be seen: ours is the last deckhand knows of.
            (None, Auto, Undo::RollBack),
            (None, Never, Undo::Leave),
        ];
        for (p, mode, want) in cases {
            assert_eq!(
                undo(p.clone(), OURS, "web:2", TARGET, mode),
                want,
                "{p:?} {mode:?}"
            );
        }
    }

    #[test]
    fn a_lost_update_answer_leaves_our_revision_ours() {
        // deckhand never learned its deployment's id: the new revision still marks it as ours.
        let p = primary("ecs-svc/5", "web:2");
        assert_eq!(
            undo(p.clone(), "", "web:2", TARGET, RollbackMode::Auto),
            Undo::RollBack
        );
        assert_eq!(
            undo(
                primary("ecs-svc/1", "web:1"),
                "",
                "web:2",
                "web:1",
                RollbackMode::Auto
            ),
            Undo::Follow {
                deployment: "ecs-svc/1".into()
            },
            "the update never took: the old deployment is the one to confirm"
        );
    }

    #[test]
    fn each_service_ends_with_a_state_and_what_to_do() {
        let at = "--cluster c --service web";
        let cases = [
            (Seen::Confirmed("web:2"), "deployed", ""),
            (Seen::Confirmed("web:1"), "rolled-back", ""),
            (
                Seen::Running("web:2"),
                "on-new-revision",
                "deckhand rollback --cluster c --service web --to web:1",
            ),
            (
                Seen::Running("web:1"),
                "not-confirmed",
                "deckhand status --cluster c",
            ),
            (Seen::Running("web:9"), "taken-over", "web:9"),
            (Seen::Unreadable, "unknown", "deckhand status --cluster c"),
        ];
        for (seen, state, says) in cases {
            let s = standing(seen, "web:2", "web:1", at);
            assert_eq!(s.state, state, "{seen:?}");
            assert!(s.action.contains(says), "{seen:?}: {}", s.action);
            assert_eq!(s.action.is_empty(), says.is_empty(), "{seen:?}");
        }
    }

    #[test]
    fn exit_3_only_when_every_changed_service_is_back() {
        assert_eq!(after_failure(true, false), Ending::RolledBack);
        assert_eq!(after_failure(true, true), Ending::Failed);
        assert_eq!(after_failure(false, false), Ending::Failed);
        assert_eq!(after_failure(false, true), Ending::Failed);
        let codes: Vec<u8> = [Ending::Deployed, Ending::RolledBack, Ending::Failed]
            .iter()
            .map(|e| e.exit().code())
            .collect();
        assert_eq!(codes, vec![0, 3, 4]);
        assert_eq!(Ending::RolledBack.result(), "rolled-back");
        assert_eq!(after_success(false, false), Ending::Deployed);
        assert_eq!(after_success(true, false), Ending::Unverified);
        assert_eq!(after_success(true, true), Ending::ReachedStage);
        assert_eq!(Ending::ReachedStage.result(), "reached-stage");
        assert_eq!(Ending::ReachedStage.exit().code(), 0);
        assert_eq!(Ending::Unverified.result(), "unverified");
        assert_eq!(
            Ending::Unverified.exit().code(),
            0,
            "unverified is not a failure"
        );
    }
}
