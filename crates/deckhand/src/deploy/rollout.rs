//! The deploy after its first UpdateService: watch our deployments to verdicts, then keep
//! them, or undo every changed service (follow ECS's own rollback, hand off, leave, or roll
//! back) and confirm the rollbacks; the confirm stage serves `deckhand rollback` too.

use tokio::time::Instant;

use super::decide::{self, Ending, Primary, Undo};
use super::history;
use super::persist;
use super::pipeline::{DeployResult, Outcome, StartError, Unit};
use super::verdict::{Failure, Verdict};
use super::watch::{self, Ended, Seen, Watched, Watcher};
use crate::aws::ecs;
use crate::aws::types::DeploymentStatus;
use crate::error::Result;
use crate::settings::DeploySettings;
use crate::signals::Interrupts;

/// The deploy after the first UpdateService: watch, then keep, roll back, or hand over.
pub(super) struct Rollout<'a> {
    pub(super) args: &'a DeploySettings,
    pub(super) watcher: &'a Watcher<'a>,
    pub(super) units: &'a [Unit],
    /// Events already shown (or there before the deploy).
    pub(super) seen: Seen,
    /// When the watch of the deployments ends, if not `--timeout` from when it starts (a
    /// deploy whose CodeDeploy services were watched first shares their deadline).
    pub(super) deadline: Option<Instant>,
}

impl Rollout<'_> {
    fn unit(&self, service: &str) -> &Unit {
        self.units
            .iter()
            .find(|u| u.service == service)
            .expect("every watched service is a unit")
    }

    pub(super) async fn follow(
        mut self,
        mut result: DeployResult,
        mut watched: Vec<Watched>,
        start_error: Option<StartError>,
        interrupted: &mut Interrupts,
    ) -> Result<Outcome> {
        let (args, watcher) = (self.args, self.watcher);
        let r = watcher.reporter;
        let deadline = self
            .deadline
            .unwrap_or_else(|| Instant::now() + args.watch.timeout);
        let ended = match start_error {
            None => {
                watcher
                    .watch(&mut watched, deadline, &mut self.seen, interrupted, true)
                    .await?
            }
            Some(_) => Ended::Decided,
        };
        if ended == Ended::Decided && start_error.is_none() && watched.iter().all(Watched::stable) {
            let mut without_tasks = false;
            for w in &watched {
                let short = watch::short(&w.task_definition);
                if let Some(stage) = &w.reached {
                    r.verdict(format!(
                        "reached {stage}: {} is going to {short}; the deployment goes on in ECS",
                        w.service
                    ));
                    continue;
                }
                if let Some(Verdict::Stable {
                    nothing_running: true,
                }) = w.verdict
                {
                    without_tasks = true;
                    r.warn(format!(
                        "{}: desiredCount is 0: the deployment completed but no task ran, so \
                         {short} is not verified; scale the service up and watch it with \
                         `deckhand status`",
                        w.service
                    ));
                    r.verdict(format!("unverified: {} is on {short}", w.service));
                } else {
                    r.verdict(format!("deployed: {} is stable on {short}", w.service));
                }
            }
            let at_stage = watched.iter().any(|w| w.reached.is_some());
            let ending = decide::after_success(without_tasks, at_stage);
            for w in &watched {
                if w.reached.is_some() {
                    let action = format!(
                        "its deployment goes on in ECS: watch it with `deckhand status {}`",
                        self.at(&w.service)
                    );
                    set_standing(
                        &mut result,
                        &w.service,
                        &w.task_definition,
                        "reached-stage",
                        action,
                    );
                    continue;
                }
                let verified = matches!(
                    w.verdict,
                    Some(Verdict::Stable {
                        nothing_running: false
                    })
                );
                let state = if verified { "deployed" } else { "unverified" };
                let action = if verified {
                    mark_verified(self.watcher, &w.task_definition).await;
                    String::new()
                } else {
                    format!(
                        "scale it up and watch it with `deckhand status {}`",
                        self.at(&w.service)
                    )
                };
                set_standing(&mut result, &w.service, &w.task_definition, state, action);
            }
            match args.keep_revisions {
                Some(_) if ending != Ending::Deployed => {
                    r.step("--keep-revisions: nothing is deregistered before a verified deploy")
                }
                Some(keep) => {
                    for u in self.units {
                        self.prune(keep as usize, u).await;
                    }
                }
                None => {}
            }
            result.result = ending.result().into();
            return Ok(Outcome {
                result,
                exit: ending.exit(),
            });
        }

        result.reason = match (&start_error, ended) {
            (Some(e), _) => e.message.clone(),
            (None, Ended::Interrupted) => {
                r.warn("interrupted while the deployment was unverified");
                Failure::Interrupted.explain()
            }
            (None, Ended::Decided) => watched
                .iter()
                .find_map(|w| {
                    w.failed()
                        .map(|f| labelled(&w.service, &f.explain(), watched.len() > 1))
                })
                .unwrap_or_default(),
        };
        result.result = "failed".into();
        r.error(format!("the deployment failed: {}", result.reason));
        for w in &watched {
            for t in &w.failures {
                let task = format!("task {}: {}", watch::short(&t.arn), watch::describe_stop(t));
                r.error(format!(
                    "  {}",
                    labelled(&w.service, &task, watched.len() > 1)
                ));
            }
            result.failed_tasks.extend(w.failed_tasks());
        }

        // Every changed service goes back to its own target, all or nothing. From here each
        // read and UpdateService is tried again until the rollback's deadline.
        let deadline = Instant::now() + args.watch.timeout;
        let mut back = Vec::new();
        let mut left = false;
        // One read of every changed service (ten per call), tried until the deadline.
        let names: Vec<String> = watched.iter().map(|w| w.service.clone()).collect();
        let read = persist::until(r, deadline, "DescribeServices", || {
            ecs::describe_services(watcher.client, watcher.cluster, &names)
        });
        let views = match read.await {
            Ok(views) => views,
            Err(e) => {
                r.error(format!(
                    "the services could not be read before the rollback's deadline ({e}); none \
                     is rolled back"
                ));
                Vec::new()
            }
        };
        for w in &watched {
            let target = &self.unit(&w.service).target;
            // ECS has judged its own rollback of our service deployment: nothing to start.
            match w.failed() {
                Some(Failure::EcsRolledBack { reason }) => {
                    r.step(format!(
                        "{}: ECS rolled it back to {target} ({reason})",
                        w.service
                    ));
                    let mut done = Watched::new(&w.service, &w.deployment, target);
                    done.verdict = Some(Verdict::Stable {
                        nothing_running: false,
                    });
                    back.push(done);
                    continue;
                }
                Some(Failure::EcsRollbackFailed { reason }) => {
                    r.error(format!("{}: ECS's rollback failed: {reason}", w.service));
                    left = true;
                    continue;
                }
                _ => {}
            }
            let Some(view) = views.iter().find(|v| v.name == w.service) else {
                left = true;
                continue;
            };
            let primary = view
                .deployments
                .iter()
                .find(|d| d.status == DeploymentStatus::Primary);
            let facts = primary.map(|d| Primary {
                id: &d.id,
                task_definition: &d.task_definition,
            });
            match decide::undo(
                facts,
                &w.deployment,
                &w.task_definition,
                target,
                args.rollback,
            ) {
                Undo::Follow { deployment } => {
                    r.step(format!(
                        "{}: going back to {target} ({deployment}); watching it",
                        w.service
                    ));
                    let mut follow = Watched::new(&w.service, &deployment, target);
                    // Seen in the service's deployments: judged by them, as it was found.
                    follow.service_deployment = watch::Lookup::Unavailable;
                    back.push(follow);
                }
                Undo::HandsOff { by } => {
                    // `by` is the primary's id: describe it whole.
                    let by = primary.map_or(by, watch::describe_deployment);
                    r.error(format!(
                        "{}: another deployment took over ({by}); deckhand does not roll back over it",
                        w.service,
                    ));
                    left = true;
                }
                Undo::Leave => {
                    r.error(format!(
                        "{}: --rollback never: left on the new revision",
                        w.service
                    ));
                    left = true;
                }
                Undo::RollBack => {
                    r.stage(format!("rolling back {} to {target}", w.service));
                    if let Some(arn) = stoppable(w) {
                        // ECS sends the traffic straight back to the source revision.
                        let stop = persist::until(r, deadline, "StopServiceDeployment", || {
                            crate::aws::sdeploy::stop_with_rollback(watcher.client, arn)
                        });
                        match stop.await {
                            Ok(()) => {
                                r.step(format!(
                                    "{}: StopServiceDeployment (ROLLBACK) of {arn}",
                                    w.service
                                ));
                                back.push(Watched::ecs_rollback(&w.service, arn, target, arn));
                                continue;
                            }
                            Err(e) => r.warn(format!(
                                "{}: ECS would not roll the service deployment back ({e}); \
                                 updating the service to {target} instead",
                                w.service
                            )),
                        }
                    }
                    match watcher.start_until(&w.service, target, deadline).await {
                        Ok(id) => {
                            r.step(format!("{}: rollback deployment {id} started", w.service));
                            back.push(Watched::new(&w.service, &id, target));
                        }
                        Err(e) => {
                            r.error(format!(
                                "{}: the rollback could not be started before its deadline: {e}",
                                w.service
                            ));
                            left = true;
                        }
                    }
                }
            }
        }
        self.confirm(result, back, left, deadline, interrupted)
            .await
    }

    /// Watches the rollbacks until `deadline`: exit 3 if every changed service is back and
    /// stable, else 4, with where each service stands.
    async fn confirm(
        mut self,
        mut result: DeployResult,
        back: Vec<Watched>,
        left: bool,
        deadline: Instant,
        interrupted: &mut Interrupts,
    ) -> Result<Outcome> {
        let confirmation =
            confirm(self.watcher, back, deadline, &mut self.seen, interrupted).await?;
        result
            .failed_tasks
            .extend(confirmation.failed_tasks.iter().cloned());
        let ending = decide::after_failure(confirmation.all_back(), left);
        let services: Vec<String> = self.units.iter().map(|u| u.service.clone()).collect();
        let views = if ending == Ending::RolledBack {
            confirmation.tell_rolled_back(self.watcher.reporter);
            Some(Vec::new())
        } else {
            report_state(self.watcher, &services).await
        };
        for u in self.units {
            let confirmed = confirmation
                .stable
                .iter()
                .find(|(s, _)| *s == u.service)
                .map(|(_, td)| td.as_str());
            let running = views
                .as_ref()
                .and_then(|v| v.iter().find(|v| v.name == u.service))
                .map(|v| v.task_definition.as_str());
            let seen = match (confirmed, running) {
                (Some(td), _) => decide::Seen::Confirmed(td),
                (None, Some(td)) => decide::Seen::Running(td),
                (None, None) => decide::Seen::Unreadable,
            };
            let s = decide::standing(seen, &u.registered, &u.target, &self.at(&u.service));
            if !s.action.is_empty() {
                self.watcher
                    .reporter
                    .error(format!("{}: {}: {}", u.service, s.state, s.action));
            }
            set_standing(&mut result, &u.service, seen.revision(), s.state, s.action);
        }
        result.rolled_back = ending == Ending::RolledBack;
        result.result = ending.result().into();
        Ok(Outcome {
            result,
            exit: ending.exit(),
        })
    }

    /// `--cluster C --service S`, for the commands a person is told to run.
    fn at(&self, service: &str) -> String {
        format!("--cluster {} --service {service}", self.watcher.cluster)
    }

    /// `--keep-revisions`: deregisters old revisions of a unit's family. The deploy has
    /// succeeded, so a failure here is a warning, not a failed deploy.
    async fn prune(&self, keep: usize, u: &Unit) {
        let r = self.watcher.reporter;
        let family = u.new.family();
        r.stage(format!("keep the newest {keep} revisions of {family}"));
        let client = self.watcher.client;
        let active = match ecs::active_revisions(client, family).await {
            Ok(a) => a,
            Err(e) => {
                r.warn(format!("old revisions were not deregistered: {e}"));
                return;
            }
        };
        let old = super::history::to_deregister(&active, keep, &[&u.registered, &u.target]);
        if old.is_empty() {
            r.step("no revision to deregister");
        }
        for arn in old {
            match ecs::deregister_task_definition(client, &arn).await {
                Ok(()) => r.step(format!("deregistered {}", watch::short(&arn))),
                Err(e) => r.warn(format!("{e}")),
            }
        }
    }
}

/// The confirm stage, for a deploy's rollbacks and for `deckhand rollback`: watches each
/// rollback deployment in `back` to a verdict (a second signal stops the wait: CI sends SIGINT,
/// then SIGTERM, before killing the job), and says for each whether it is back and stable.
/// The caller tells the verdict ([`Confirmation::tell_rolled_back`]): only it knows whether
/// every changed service is back.
pub async fn confirm(
    watcher: &Watcher<'_>,
    mut back: Vec<Watched>,
    deadline: Instant,
    seen: &mut Seen,
    interrupted: &mut Interrupts,
) -> Result<Confirmation> {
    let r = watcher.reporter;
    let watcher = &watcher.to_the_end();
    let ended = if back.is_empty() {
        Ended::Decided
    } else {
        watcher
            .watch(&mut back, deadline, seen, interrupted, false)
            .await?
    };
    let mut confirmation = Confirmation {
        failed_tasks: back.iter().flat_map(Watched::failed_tasks).collect(),
        ..Confirmation::default()
    };
    for w in &back {
        let why = match (&w.verdict, ended) {
            (Some(Verdict::Stable { .. }), Ended::Decided) => {
                confirmation
                    .stable
                    .push((w.service.clone(), w.task_definition.clone()));
                continue;
            }
            (Some(Verdict::Failed(f)), _) => f.explain(),
            (_, Ended::Interrupted) => "the wait was interrupted".to_string(),
            _ => "unknown".to_string(),
        };
        r.error(format!(
            "{}: the rollback to {} ({}) was not confirmed: {why}",
            w.service, w.task_definition, w.deployment
        ));
        confirmation.unconfirmed.push(why);
    }
    Ok(confirmation)
}

/// What the confirm stage found.
#[derive(Debug, Default)]
pub struct Confirmation {
    /// (service, task definition) of each rollback that is back and stable.
    pub stable: Vec<(String, String)>,
    /// Why each of the others is not confirmed.
    pub unconfirmed: Vec<String>,
    /// Tasks of the rollbacks' revisions that stopped as failures.
    pub failed_tasks: Vec<watch::FailedTask>,
}

impl Confirmation {
    pub fn all_back(&self) -> bool {
        self.unconfirmed.is_empty()
    }

    /// The verdict lines, once the whole rollback is known to be confirmed.
    pub fn tell_rolled_back(&self, r: &crate::report::Reporter) {
        for (service, task_definition) in &self.stable {
            r.verdict(format!(
                "rolled back: {service} is stable on {task_definition}"
            ));
        }
    }
}

/// Our service deployment, when ECS can roll it back itself (StopServiceDeployment): found,
/// and last seen going.
fn stoppable(w: &Watched) -> Option<&str> {
    match (&w.service_deployment, &w.service_deployment_view) {
        (watch::Lookup::Found(arn), Some(sd))
            if matches!(sd.status.as_str(), "PENDING" | "IN_PROGRESS") =>
        {
            Some(arn)
        }
        _ => None,
    }
}

/// `reason`, prefixed with the service when several were deployed.
pub(super) fn labelled(service: &str, reason: &str, several: bool) -> String {
    if several {
        format!("{service}: {reason}")
    } else {
        reason.to_string()
    }
}

/// Logs where the services stand, for a person taking over, and returns what was read (`None`
/// if the services could not be read, after trying for a while).
pub async fn report_state(
    watcher: &Watcher<'_>,
    services: &[String],
) -> Option<Vec<ecs::ServiceView>> {
    let r = watcher.reporter;
    let deadline = Instant::now() + STATE_PATIENCE;
    let read = persist::until(r, deadline, "DescribeServices", || {
        ecs::describe_services(watcher.client, watcher.cluster, services)
    });
    match read.await {
        Ok(views) => {
            for view in &views {
                r.warn(format!(
                    "{} now: task definition {}, {} running of {} desired",
                    view.name,
                    watch::short(&view.task_definition),
                    view.running,
                    view.desired
                ));
                for d in &view.deployments {
                    r.warn(format!("  {}", watch::describe_deployment(d)));
                }
            }
            Some(views)
        }
        Err(e) => {
            r.warn(format!("the services' state could not be read: {e}"));
            None
        }
    }
}

/// How long the last look at the services' state keeps trying through throttling.
const STATE_PATIENCE: std::time::Duration = std::time::Duration::from_secs(20);

/// Tags `task_definition` with [`history::VERIFIED_TAG`]: deckhand saw it stable with tasks
/// running. Throttling and other passing failures are tried again for a while; one that stays
/// (e.g. no ecs:TagResource permission) is a warning saying what it costs and how to mend it.
pub async fn mark_verified(watcher: &Watcher<'_>, task_definition: &str) {
    let at = history::verified_value(std::time::SystemTime::now());
    let deadline = Instant::now() + STATE_PATIENCE;
    let what = format!("{}: marking it verified", watch::short(task_definition));
    let tagged = persist::until(watcher.reporter, deadline, &what, || {
        ecs::tag_resource(watcher.client, task_definition, history::VERIFIED_TAG, &at)
    })
    .await;
    if let Err(e) = tagged {
        watcher.reporter.warn(format!(
            "{} could not be marked as verified ({e}): `deckhand rollback` will not go back to \
             it unless named with --to; mark it with `aws ecs tag-resource --resource-arn {} \
             --tags key={},value={at}`",
            watch::short(task_definition),
            task_definition,
            history::VERIFIED_TAG
        ));
    }
}

/// Fills in one service's standing in the result.
fn set_standing(
    result: &mut DeployResult,
    service: &str,
    running: &str,
    state: &str,
    action: String,
) {
    if let Some(s) = result.services.iter_mut().find(|s| s.service == service) {
        s.running_task_definition_arn = running.to_string();
        s.state = state.to_string();
        s.action = action;
    }
}
