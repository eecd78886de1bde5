//! The manual rollback (`deckhand rollback`): put a service back on its last good revision (or
//! the one asked for) and confirm it like a deploy's rollback; for the person paged at 3 a.m.

use serde::Serialize;
use tokio::time::Instant;

use crate::aws::{self, ecs};
use crate::deploy::codedeploy::{CodeDeployer, Followed, InProgress, Role, Stop};
use crate::deploy::history;
use crate::deploy::rollout::{confirm, report_state};
use crate::deploy::verdict;
use crate::deploy::watch::{self, Seen, Watched, Watcher};
use crate::error::{Error, Exit, Result};
use crate::report::Reporter;
use crate::settings::RollbackSettings;

/// The result object (stdout with `--output json`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct RollbackResult {
    /// rolled-back | unchanged | started | failed
    pub result: String,
    /// The revision rolled back to.
    pub task_definition_arn: String,
    /// The revision the service ran before.
    pub previous_task_definition_arn: String,
    pub deployment_id: String,
    pub reason: String,
    /// Tasks of the revision rolled back to that stopped as failures, with their containers'
    /// last log lines.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failed_tasks: Vec<super::watch::FailedTask>,
}

/// How a rollback that was started (or found unnecessary) ended.
pub type Outcome = super::Outcome<RollbackResult>;

/// The manual rollback pipeline: find the service, choose the target, start the rollback and
/// confirm it with the deploy's own confirm stage. `Err`: nothing was changed (exit 1 or 2);
/// `Ok` with exit 0 when the service is stable on the target, 4 when it was changed but is not
/// confirmed stable.
pub async fn rollback(
    r: &Reporter,
    region: Option<&str>,
    args: &RollbackSettings,
) -> Result<Outcome> {
    let service = &args.service;
    let cluster = args.cluster.as_str();
    let config = aws::config::load(region).await?;
    let client = ecs::Ecs::new(&config);

    r.stage(format!("service {service} in {cluster}"));
    let view = ecs::describe_service(&client, cluster, service).await?;
    let current = view.task_definition.clone();
    r.step(format!("running {current}"));
    let watcher = Watcher::new(r, &config, &client, cluster, &args.watch);
    let cd = CodeDeployer::new(&config, &watcher);
    // A CODE_DEPLOY service goes back through CodeDeploy, and its history is its group's.
    let plan = match view.controller.as_str() {
        "CODE_DEPLOY" => Some(cd.plan(&view, &args.codedeploy).await?),
        _ => None,
    };
    // A CODE_DEPLOY service's deployment in progress: the service still names its original
    // task set's revision, so the walk back starts from the revision being deployed, and the
    // original task set, steady, counts as seen stable.
    let busy = match &plan {
        Some(p) => match cd.busy(&p.group).await? {
            Some(id) => Some((cd.in_progress(&id, &view).await, id)),
            None => None,
        },
        None => None,
    };
    let from = match &busy {
        Some((
            InProgress {
                deploying: Some(deploying),
                ..
            },
            _,
        )) => deploying.clone(),
        Some((_, id)) => {
            r.warn(format!(
                "cannot tell which revision CodeDeploy deployment {id} deploys: going back from \
                 {}, the revision the service names",
                watch::short(&current)
            ));
            current.clone()
        }
        None => current.clone(),
    };
    let target = match &args.to {
        Some(spec) => {
            let reference = history::resolve_to(spec, &current).map_err(Error::usage)?;
            // Resolves `family:N` to an ARN, and fails (nothing changed) if it does not exist.
            let described = ecs::describe_task_definition(&client, &reference).await?;
            described["taskDefinition"]["taskDefinitionArn"]
                .as_str()
                .unwrap_or(&reference)
                .to_string()
        }
        None => {
            let history = History {
                client: &client,
                cluster,
                service,
                codedeploy: plan.as_ref().map(|p| (&cd.client, &p.group)),
                steady: busy
                    .as_ref()
                    .and_then(|(b, _)| steady_original(&view, b.original.as_deref(), &from)),
            };
            let target = previous_verified(r, &history, &from).await?;
            r.step(format!(
                "going back to {target}: the verified revision live before {}",
                watch::short(&from)
            ));
            target
        }
    };
    let mut result = RollbackResult {
        task_definition_arn: target.clone(),
        previous_task_definition_arn: from.clone(),
        ..RollbackResult::default()
    };
    let done = |result: RollbackResult, exit: Exit| Ok(Outcome { result, exit });
    if let Some(plan) = &plan {
        let busy = busy.map(|(b, id)| (id, b.rollback));
        return via_codedeploy(&cd, plan, args, &view, busy, result).await;
    }

    let busy = verdict::busy(&view.deployments);
    if history::same_revision(&target, &current) && busy.is_none() {
        r.step(format!(
            "the service already runs {target} and no deployment is in progress: nothing to do"
        ));
        result.result = "unchanged".into();
        return done(result, Exit::Success);
    }
    if let Some(d) = busy {
        // A person asked for this: a rollback may replace a deployment that is going wrong.
        r.warn(format!(
            "replacing the deployment in progress: {}",
            watch::describe_deployment(d)
        ));
    }

    let mut interrupted = crate::signals::Interrupts::new();
    r.stage(format!("rolling back to {target}"));
    // Throttling or a passing failure of UpdateService is tried again until the deadline, as a
    // deploy's rollback is.
    let deadline = Instant::now() + args.watch.timeout;
    let deployment = watcher.start_until(service, &target, deadline).await?;
    r.step(format!("deployment {deployment} started"));
    result.deployment_id = deployment.clone();
    if args.no_wait {
        result.result = "started".into();
        return done(result, Exit::Success);
    }

    let back = vec![Watched::new(service, &deployment, &target)];
    let mut seen = Seen::after(std::slice::from_ref(&view));
    let confirmed = confirm(&watcher, back, deadline, &mut seen, &mut interrupted).await;
    if let Ok(c) = &confirmed {
        result.failed_tasks = c.failed_tasks.clone();
    }
    let why = match confirmed {
        Ok(confirmation) if confirmation.all_back() => {
            confirmation.tell_rolled_back(r);
            result.result = "rolled-back".into();
            return done(result, Exit::Success);
        }
        Ok(confirmation) => confirmation.unconfirmed.join("; "),
        Err(e) => {
            r.error(format!(
                "the rollback to {target} ({deployment}) was not confirmed: {}",
                e.message
            ));
            e.message
        }
    };
    report_state(&watcher, std::slice::from_ref(service)).await;
    result.result = "failed".into();
    result.reason = why;
    done(result, Exit::NeedsPerson)
}

/// `deckhand rollback` of a CODE_DEPLOY service: a CodeDeploy deployment of the target (after
/// stopping, with CodeDeploy's rollback, a deployment in progress), watched to its end.
async fn via_codedeploy(
    cd: &CodeDeployer<'_>,
    plan: &crate::deploy::codedeploy::Plan,
    args: &RollbackSettings,
    view: &ecs::ServiceView,
    busy: Option<(String, bool)>,
    mut result: RollbackResult,
) -> Result<Outcome> {
    let r = cd.watcher.reporter;
    let service = &args.service;
    let target = result.task_definition_arn.clone();
    let mut interrupted = crate::signals::Interrupts::new();
    let deadline = Instant::now() + args.watch.timeout;
    if history::same_revision(&target, &view.task_definition) && busy.is_none() {
        r.step(format!(
            "the service already runs {target} and no CodeDeploy deployment is in progress: \
             nothing to do"
        ));
        result.result = "unchanged".into();
        return Ok(Outcome {
            result,
            exit: Exit::Success,
        });
    }
    let mut seen = Seen::after(std::slice::from_ref(view));
    // Once a deployment in progress was stopped, a later failure is no longer "nothing
    // changed".
    let mut stopped: Option<String> = None;
    let changed = |e: Error, stopped: &Option<String>| match stopped {
        Some(id) => Error {
            exit: Exit::NeedsPerson,
            message: format!(
                "{}. CodeDeploy deployment {id} was stopped (with CodeDeploy's rollback) before \
                 this; check the service with `deckhand status --cluster {} --service {service}`",
                e.message
                    .replace("; nothing was changed", "")
                    .replace("nothing was changed", "deckhand changed nothing more")
                    .trim_end_matches('.'),
                args.cluster
            ),
            kind: e.kind,
        },
        None => e,
    };
    if let Some((id, rollback)) = busy {
        if rollback {
            // Stopping CodeDeploy's own rollback would leave traffic where it is.
            r.warn(format!(
                "CodeDeploy deployment {id} in progress is CodeDeploy's rollback: waiting for it \
                 to end"
            ));
        } else {
            // A person asked for this: the deployment in progress is stopped, and CodeDeploy
            // sends the traffic back to the original task set first.
            r.warn(format!(
                "stopping CodeDeploy deployment {id} in progress, with CodeDeploy's rollback"
            ));
            let mut going = Followed::new(service, &plan.group, &id, "", Role::Deploy);
            if cd.stop(&mut going, deadline).await != Stop::Stopping {
                return Err(Error::failed(format!(
                    "CodeDeploy deployment {id} is in progress and could not be stopped; \
                     nothing was changed"
                )));
            }
            stopped = Some(id.clone());
        }
        cd.settled(
            service,
            &plan.group,
            deadline.saturating_duration_since(Instant::now()),
            &mut interrupted,
        )
        .await
        .map_err(|e| changed(e, &stopped))?;
        // CodeDeploy's rollback may have put the service back on the target already.
        if cd.on(service, &target).await == Some(true) {
            r.verdict(format!("rolled back: {service} is stable on {target}"));
            result.result = "rolled-back".into();
            // The deployment that put it back: CodeDeploy's rollback.
            result.deployment_id = match rollback {
                true => id,
                false => cd.rolled_back_by(&id).await.unwrap_or(id),
            };
            return Ok(Outcome {
                result,
                exit: Exit::Success,
            });
        }
    }
    r.stage(format!("rolling back to {target}"));
    let spec = plan.appspec(&target).map_err(|e| changed(e, &stopped))?;
    let id = cd
        .start(service, &plan.group, &spec, deadline)
        .await
        .map_err(|e| changed(e, &stopped))?;
    r.step(format!("CodeDeploy deployment {id} started"));
    result.deployment_id = id.clone();
    if args.no_wait {
        result.result = "started".into();
        return Ok(Outcome {
            result,
            exit: Exit::Success,
        });
    }
    let mut back = vec![Followed::new(
        service,
        &plan.group,
        &id,
        &target,
        Role::Rollback,
    )];
    let ended = cd
        .watch(&mut back, deadline, &mut seen, &mut interrupted, false)
        .await;
    let b = &back[0];
    result.failed_tasks = b.tasks.failed_tasks();
    let confirmed = matches!(ended, Ok(watch::Ended::Decided))
        && b.good()
        && cd.confirmed_on(service, &target, deadline).await;
    if confirmed {
        r.verdict(format!("rolled back: {service} is stable on {target}"));
        result.result = "rolled-back".into();
        return Ok(Outcome {
            result,
            exit: Exit::Success,
        });
    }
    let why = match ended {
        Err(e) => e.message,
        Ok(watch::Ended::Interrupted) => "the wait was interrupted".to_string(),
        Ok(_) => b
            .failure()
            .unwrap_or_else(|| "the service is not seen on it alone".to_string()),
    };
    r.error(format!(
        "the rollback to {target} ({id}) was not confirmed: {why}"
    ));
    report_state(cd.watcher, std::slice::from_ref(service)).await;
    result.result = "failed".into();
    result.reason = why;
    Ok(Outcome {
        result,
        exit: Exit::NeedsPerson,
    })
}

/// The most revisions a walk back follows (a chain of unverified deploys is rarely longer).
const WALK_LIMIT: usize = 50;

/// The verified revision that was live immediately before `current`: follow each revision's
/// [`history::PREVIOUS_TAG`] back past unverified ones; where a revision has none (deckhand did
/// not deploy it), the newest older verified revision in ECS's deployment history. Never
/// forward. No such revision: exit 1, nothing changed.
async fn previous_verified(r: &Reporter, history: &History<'_>, current: &str) -> Result<String> {
    let client = history.client;
    let mut by_ecs: Option<Vec<String>> = None;
    let (mut at, tags) = ecs::task_definition_tags(client, current).await?;
    let mut marks = history::Marks::from_tags(&tags);
    let mut walked = vec![at.clone()];
    let none_left = |why: String| {
        Error::failed(format!(
            "{why}. Pass --to REVISION to choose a revision; nothing was changed."
        ))
    };
    for _ in 0..WALK_LIMIT {
        let Some(previous) = marks.previous else {
            if by_ecs.is_none() {
                by_ecs = Some(history.successful().await?);
            }
            return history::older_verified(&at, by_ecs.as_deref().unwrap_or_default())
                .map(str::to_string)
                .ok_or_else(|| {
                    none_left(format!(
                        "no verified revision of {} older than {} is in the service's \
                         deployment history",
                        history::family_of(&at),
                        watch::short(&at)
                    ))
                });
        };
        if walked.iter().any(|w| history::same_revision(w, &previous)) {
            return Err(none_left(format!(
                "the revisions' {} tags go round in a circle at {}",
                history::PREVIOUS_TAG,
                watch::short(&previous)
            )));
        }
        let (arn, tags) = ecs::task_definition_tags(client, &previous).await?;
        marks = history::Marks::from_tags(&tags);
        if by_ecs.is_none() && !marks.verified && marks.previous.is_none() {
            by_ecs = Some(history.successful().await?);
        }
        if history::verified(&arn, &marks, by_ecs.as_deref().unwrap_or_default()) {
            return Ok(arn);
        }
        r.step(format!(
            "{} was never seen stable with tasks running: looking further back",
            watch::short(&arn)
        ));
        walked.push(arn.clone());
        at = arn;
    }
    Err(none_left(format!(
        "no verified revision within {WALK_LIMIT} revisions before {}",
        watch::short(current)
    )))
}

/// The revision of a CODE_DEPLOY service's original task set while a deployment of
/// `deploying` replaces it, when all its tasks run (pure): the Blue task set's (`original`),
/// else the PRIMARY one's, never `deploying` itself.
fn steady_original(
    view: &ecs::ServiceView,
    original: Option<&str>,
    deploying: &str,
) -> Option<String> {
    view.task_sets
        .iter()
        .filter(|t| !history::same_revision(&t.task_definition, deploying))
        .filter(|t| original.map_or(t.status == "PRIMARY", |o| t.task_definition == o))
        .find(|t| t.running == t.desired && t.pending == 0)
        .map(|t| t.task_definition.clone())
}

/// Where a service's deployment history is read: ECS's service deployments, or a CODE_DEPLOY
/// service's CodeDeploy group.
struct History<'a> {
    client: &'a ecs::Ecs,
    cluster: &'a str,
    service: &'a str,
    codedeploy: Option<(
        &'a crate::aws::codedeploy::Client,
        &'a crate::aws::codedeploy::Group,
    )>,
    /// The steady original task set's revision, while a CodeDeploy deployment replaces it:
    /// seen stable now, though no CodeDeploy deployment of it may have succeeded (the task
    /// set ECS made with the service).
    steady: Option<String>,
}

impl History<'_> {
    /// The revisions of the service's successful deployments, newest first.
    async fn successful(&self) -> Result<Vec<String>> {
        match self.codedeploy {
            Some((client, group)) => {
                crate::aws::codedeploy::succeeded_task_definitions(client, group)
                    .await
                    .map(|mut found| {
                        found.extend(self.steady.clone());
                        found
                    })
                    .map_err(|e| {
                        Error::failed(format!(
                            "cannot read the CodeDeploy deployment history ({e}). Pass --to \
                         REVISION to choose the revision; nothing was changed."
                        ))
                    })
            }
            None => history_of(self.client, self.cluster, self.service).await,
        }
    }
}

/// The revisions of the service's SUCCESSFUL deployments according to ECS, newest first.
async fn history_of(client: &ecs::Ecs, cluster: &str, service: &str) -> Result<Vec<String>> {
    ecs::successful_task_definitions(client, cluster, service)
        .await
        .map_err(|e| {
            Error::failed(format!(
                "cannot read the service's deployment history ({e}). Pass --to REVISION to \
                 choose the revision; nothing was changed."
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_steady_original_is_the_blue_task_set_never_the_revision_deployed() {
        let set = |status: &str, td: &str, running: i32| ecs::TaskSetView {
            id: format!("ecs-svc/{td}"),
            status: status.into(),
            task_definition: td.into(),
            desired: 2,
            running,
            pending: 2 - running,
        };
        let view = |sets: Vec<ecs::TaskSetView>| ecs::ServiceView {
            task_sets: sets,
            ..Default::default()
        };
        let before = view(vec![set("PRIMARY", "web:3", 2), set("ACTIVE", "web:4", 1)]);
        let moved = view(vec![set("PRIMARY", "web:4", 2), set("ACTIVE", "web:3", 2)]);
        let starting = view(vec![set("PRIMARY", "web:3", 1), set("ACTIVE", "web:4", 0)]);
        let cases = [
            (&before, Some("web:3"), Some("web:3")),
            (&before, None, Some("web:3")),
            // After traffic moved the PRIMARY is what is deployed: never counted.
            (&moved, None, None),
            (&moved, Some("web:3"), Some("web:3")),
            (&starting, Some("web:3"), None),
        ];
        for (v, original, want) in cases {
            assert_eq!(
                steady_original(v, original, "web:4").as_deref(),
                want,
                "{original:?}"
            );
        }
    }
}
