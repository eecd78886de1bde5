//! Watching deployments to verdicts: one service or several at once (DescribeServices takes ten
//! per call), polled on a jittered interval that quickens near a verdict, lengthens when ECS
//! throttles and keeps within a budget of calls ([`next_poll`]); each new service event and
//! each failed task is printed once, and the verdict function decides.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use aws_sdk_ecs::Client;
use futures_util::StreamExt;
use serde::Serialize;
use tokio::time::Instant;

use super::tasklogs::{self, ContainerLog};
use super::verdict::{self, Failure, Limits, Role, Snapshot, Verdict};
use crate::aws::ecs::{self, StoppedTask};
use crate::aws::sdeploy::{self, ServiceDeployment};
use crate::aws::types::DeploymentView;
use crate::aws::types::{DeploymentStatus, RolloutState};
use crate::error::{Error, Kind, Result};
use crate::report::{Event, Reporter};
use crate::signals::Interrupts;

/// The most stopped-task lookups (ListTasks) one poll makes. With more deployments than this,
/// they take turns, and one whose `failedTasks` grew goes first: fail-fast stays fast while the
/// API calls per poll stay bounded however many services are watched.
pub const TASK_LOOKUPS_PER_POLL: usize = 10;

/// Which pending deployments look up their stopped tasks this poll (pure): every one when they
/// fit in the budget, else those ECS reports new failures for, then the others in turn from
/// `turn`. `pending` is (index, ECS failed count, failures already known).
pub fn lookups(pending: &[(usize, i32, usize)], turn: usize, budget: usize) -> Vec<usize> {
    if pending.len() <= budget {
        return pending.iter().map(|p| p.0).collect();
    }
    let mut chosen: Vec<usize> = pending
        .iter()
        .filter(|(_, failed, known)| *failed > 0 && *failed as usize > *known)
        .map(|p| p.0)
        .take(budget)
        .collect();
    let n = pending.len();
    for k in 0..n {
        if chosen.len() >= budget {
            break;
        }
        let (i, _, _) = pending[(turn + k) % n];
        if !chosen.contains(&i) {
            chosen.push(i);
        }
    }
    chosen
}

/// How far the clocks of deckhand's machine and ECS may disagree, in seconds: a service
/// deployment created up to this long before the watch began can be ours (an older one of
/// the same revision, a rollback's, must not be).
const CLOCK_SKEW: f64 = 2.0;

/// Looks that find no service deployment of ours, once ECS lists our deployment, before the
/// service's `deployments[]` is judged alone (our UpdateService applied on an earlier try
/// whose answer was lost, before the watch began).
const LOOKS_FOR_SERVICE_DEPLOYMENT: u32 = 5;

/// Service-deployment lookups in flight at once.
const LOOKUPS_AT_ONCE: usize = 5;

/// The most failed tasks of one deployment whose logs are read: a crash loop's first few say
/// what the rest would.
pub const LOGGED_TASKS: usize = 3;

/// Where and how to watch.
pub struct Watcher<'a> {
    pub reporter: &'a Reporter,
    pub client: &'a Client,
    pub cluster: &'a str,
    pub poll: Duration,
    pub limits: Limits,
    /// Reads failed tasks' last log lines (none when `--log-lines 0`).
    pub logs: Option<aws_sdk_cloudwatchlogs::Client>,
    pub log_lines: usize,
    /// `--wait-until STAGE`: a deploy's watch ends once its service deployment reaches it.
    pub wait_until: Option<String>,
}

/// What has been printed already, across a deploy and its rollback.
#[derive(Debug, Default)]
pub struct Seen {
    events: HashSet<String>,
    tasks: HashSet<String>,
    /// Task definitions' containers and where they log, read once each.
    containers: HashMap<String, Vec<tasklogs::Container>>,
}

/// A task of the watched revision that stopped as a failure, with its containers' last log
/// lines (for the first few of each deployment): the result's `failed_tasks`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailedTask {
    pub service: String,
    pub task: String,
    pub task_definition_arn: String,
    pub reason: String,
    pub logs: Vec<ContainerLog>,
    /// The family of the pre-deploy task, when it is the gate's (which is no service's:
    /// `service` is then empty).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub pre_deploy: String,
}

impl Seen {
    /// Everything `views` show counts as seen: only what happens after them is printed.
    pub fn after(views: &[ecs::ServiceView]) -> Self {
        Seen {
            events: views
                .iter()
                .flat_map(|v| v.events.iter().map(|e| e.id.clone()))
                .collect(),
            ..Seen::default()
        }
    }
}

/// One deployment under watch, and what has been learned of it.
#[derive(Debug, Clone)]
pub struct Watched {
    pub service: String,
    pub deployment: String,
    /// The task definition the deployment rolls out.
    pub task_definition: String,
    /// `None` while pending.
    pub verdict: Option<Verdict>,
    /// Its failed tasks, for the summary.
    pub failures: Vec<StoppedTask>,
    /// Their containers' last log lines, by task ARN (for the first [`LOGGED_TASKS`]).
    pub logs: HashMap<String, Vec<ContainerLog>>,
    /// Whether the reader was told that later failed tasks' logs are not read.
    logs_capped: bool,
    placement: u32,
    ours_seen: bool,
    last_progress: String,
    /// The service as last read, in a line, for a verdict reached without ECS's answer.
    last_seen: Option<String>,
    /// Our service deployment: being looked for, found, or not to be had here.
    pub service_deployment: Lookup,
    /// It as last read.
    pub service_deployment_view: Option<ServiceDeployment>,
    /// A deploy, or ECS rolling ours back.
    pub role: Role,
    /// The `--wait-until` stage its service deployment reached, when the watch ended there.
    pub reached: Option<String>,
    /// When the watch began (seconds since the epoch), less a margin for clock skew: our
    /// service deployment was created after it.
    since: f64,
    /// The progress line of its service deployment last printed, and the paused hooks told.
    last_stage: String,
    hooks_told: HashSet<String>,
    /// When the watch first saw its service deployment in BAKE_TIME: the bake's end, and so
    /// the verdict, is then foreseeable ([`bake_ending`]).
    bake_seen: Option<Instant>,
    /// When its service deployment was last read, and what `deployments[]` showed then
    /// ([`shape`]): a quick look reads it again only when that changed ([`sd_due`]).
    sd_read: Option<(Instant, Vec<String>)>,
}

/// Where the search for a watched deployment's service deployment stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// Not found yet, after this many looks.
    Looking(u32),
    /// No ServiceDeployments API here, or ours not found: `deployments[]` is the source.
    Unavailable,
    Found(String),
}

impl Watched {
    pub fn new(service: &str, deployment: &str, task_definition: &str) -> Self {
        Watched {
            service: service.to_string(),
            deployment: deployment.to_string(),
            task_definition: task_definition.to_string(),
            verdict: None,
            failures: Vec::new(),
            logs: HashMap::new(),
            logs_capped: false,
            placement: 0,
            ours_seen: false,
            last_progress: String::new(),
            last_seen: None,
            service_deployment: Lookup::Looking(0),
            service_deployment_view: None,
            role: Role::Deploy,
            reached: None,
            since: crate::clock::now() - CLOCK_SKEW,
            last_stage: String::new(),
            hooks_told: HashSet::new(),
            bake_seen: None,
            sd_read: None,
        }
    }

    /// ECS rolling back the service deployment `arn` (StopServiceDeployment, a hook's
    /// ROLLBACK) to `target`, watched to ROLLBACK_SUCCESSFUL.
    pub fn ecs_rollback(service: &str, deployment: &str, target: &str, arn: &str) -> Self {
        let mut w = Watched::new(service, deployment, target);
        w.service_deployment = Lookup::Found(arn.to_string());
        w.role = Role::Rollback;
        w
    }

    pub fn failed(&self) -> Option<&Failure> {
        match &self.verdict {
            Some(Verdict::Failed(f)) => Some(f),
            _ => None,
        }
    }

    pub fn stable(&self) -> bool {
        matches!(self.verdict, Some(Verdict::Stable { .. }))
    }

    /// Its failed tasks as the result reports them.
    pub fn failed_tasks(&self) -> Vec<FailedTask> {
        self.failures
            .iter()
            .map(|t| FailedTask {
                service: self.service.clone(),
                task: short(&t.arn).to_string(),
                task_definition_arn: self.task_definition.clone(),
                reason: describe_stop(t),
                logs: self.logs.get(&t.arn).cloned().unwrap_or_default(),
                pre_deploy: String::new(),
            })
            .collect()
    }
}

/// How a watch ended; the verdicts are in the [`Watched`] entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// Every deployment has a verdict, or (failing fast) one has failed.
    Decided,
    /// SIGINT/SIGTERM arrived first.
    Interrupted,
}

impl<'a> Watcher<'a> {
    /// A watcher with the command line's settings.
    pub fn new(
        reporter: &'a Reporter,
        config: &aws_config::SdkConfig,
        client: &'a Client,
        cluster: &'a str,
        args: &crate::settings::WatchSettings,
    ) -> Self {
        Watcher {
            reporter,
            client,
            cluster,
            poll: args.poll,
            limits: Limits {
                failed_tasks: args.max_failed_tasks,
                ..Limits::default()
            },
            logs: (args.log_lines > 0).then(|| aws_sdk_cloudwatchlogs::Client::new(config)),
            log_lines: args.log_lines,
            wait_until: None,
        }
    }

    /// The same watcher for rollbacks: they are watched to their end, whatever `--wait-until`.
    pub fn to_the_end(&self) -> Watcher<'a> {
        Watcher {
            reporter: self.reporter,
            client: self.client,
            cluster: self.cluster,
            poll: self.poll,
            limits: self.limits,
            logs: self.logs.clone(),
            log_lines: self.log_lines,
            wait_until: None,
        }
    }

    /// UpdateService of `service` to `task_definition`; returns the deployment it started. When
    /// the answer is lost (timeout, dropped connection) the update may still have happened: the
    /// service is read to find out, so "nothing changed" (exit 1) is only said when it is true.
    pub async fn start(&self, service: &str, task_definition: &str) -> Result<String> {
        let e = match ecs::update_service(self.client, self.cluster, service, task_definition).await
        {
            Ok(id) => return Ok(id),
            Err(e) => e,
        };
        match ecs::describe_service(self.client, self.cluster, service).await {
            Ok(view) => match view.deployments.iter().find(|d| {
                d.status == DeploymentStatus::Primary
                    && super::history::same_revision(&d.task_definition, task_definition)
            }) {
                Some(d) => {
                    self.reporter.warn(format!(
                        "UpdateService of {service} reported an error ({e}), but the service took \
                         the update: following deployment {}",
                        d.id
                    ));
                    Ok(d.id.clone())
                }
                None => Err(e),
            },
            Err(_) => Err(Error {
                exit: crate::error::Exit::NeedsPerson,
                message: format!(
                    "{e}. Whether {service} was changed cannot be told; check it with `deckhand status`."
                ),
                kind: e.kind,
            }),
        }
    }

    /// [`Watcher::start`], tried again after each transient failure until `deadline`: for a
    /// rollback, and for every service of a deploy once one has changed. Trying again is safe:
    /// ECS starts no second deployment for the task definition a service already has, and
    /// each try first checks whether the last one took.
    pub async fn start_until(
        &self,
        service: &str,
        task_definition: &str,
        deadline: Instant,
    ) -> Result<String> {
        let what = format!("{service}: UpdateService to {}", short(task_definition));
        super::persist::until(self.reporter, deadline, &what, || {
            self.start(service, task_definition)
        })
        .await
    }

    /// Waits (up to `wait`) until no deployment is rolling out on any of `services`, so deckhand
    /// never starts one over another pipeline's. Returns the settled services; exit 1 if they do
    /// not settle.
    pub async fn settled(
        &self,
        services: &[String],
        wait: Duration,
        interrupted: &mut Interrupts,
    ) -> Result<Vec<ecs::ServiceView>> {
        let deadline = Instant::now() + wait;
        let mut announced = String::new();
        loop {
            let views = ecs::describe_services(self.client, self.cluster, services).await?;
            let Some((name, d)) = views
                .iter()
                .find_map(|v| verdict::busy(&v.deployments).map(|d| (&v.name, d)))
            else {
                return Ok(views);
            };
            if Instant::now() >= deadline {
                return Err(Error::failed(format!(
                    "another deployment is in progress on {name}: {}. {} Run again when it has \
                     finished; nothing was changed.",
                    describe_deployment(d),
                    if wait.is_zero() {
                        "--wait-for-others is 0, so deckhand did not wait.".to_string()
                    } else {
                        format!("It did not finish within --wait-for-others {wait:?}.")
                    }
                )));
            }
            if announced != d.id {
                self.reporter.step(format!(
                    "waiting up to {wait:?} for the deployment in progress on {name} to finish: {}",
                    describe_deployment(d)
                ));
                announced = d.id.clone();
            }
            tokio::select! {
                _ = tokio::time::sleep(jittered(self.poll).min(deadline.saturating_duration_since(Instant::now()))) => {}
                _ = interrupted.recv() => return Err(Error::failed(
                    "interrupted while waiting for another deployment; nothing was changed",
                )),
            }
        }
    }

    /// Polls until every deployment in `watched` has a verdict (with `fail_fast`, until the
    /// first failure), `deadline` passes (the pending ones time out), or a signal arrives. How
    /// long it waits between looks is [`next_poll`]'s decision.
    pub async fn watch(
        &self,
        watched: &mut [Watched],
        deadline: Instant,
        seen: &mut Seen,
        interrupted: &mut Interrupts,
        fail_fast: bool,
    ) -> Result<Ended> {
        let several = watched.len() > 1;
        let began = Instant::now();
        let mut turn = 0usize;
        // ECS calls made so far, and answers in a row that were throttling.
        let mut calls = 0u64;
        let mut throttled = 0u32;
        // Per watched deployment: when its stopped tasks were last looked up, how many of its
        // tasks ran at the previous poll, and the most the service's other deployments were
        // seen running.
        let mut looked = vec![began; watched.len()];
        let mut ran: Vec<Option<i32>> = vec![None; watched.len()];
        let mut others_peak = vec![0i32; watched.len()];
        // Since when every look has failed (the endpoint gone, ECS failing), if it has.
        let mut failing_since: Option<Instant> = None;
        // The caller has just looked (UpdateService's answer, or the DescribeServices that chose
        // a rollback): the first look of the watch waits a moment rather than repeat it.
        tokio::select! {
            _ = tokio::time::sleep(self.poll.min(NEAR_POLL)) => {}
            _ = interrupted.recv() => return Ok(Ended::Interrupted),
        }
        loop {
            // Set when a deployment's verdict may come any moment.
            let mut near = false;
            // Set when ECS answered a call of this round with throttling.
            let mut slowed = false;
            let pending: Vec<String> = watched
                .iter()
                .filter(|w| w.verdict.is_none())
                .map(|w| w.service.clone())
                .collect();
            calls += pending.len().div_ceil(ecs::DESCRIBE_BATCH) as u64;
            // The views are as of the round's start: whether they are past the deadline is
            // judged from then, however long the round's other reads take.
            let round = Instant::now();
            match ecs::describe_services(self.client, self.cluster, &pending).await {
                Ok(views) => {
                    failing_since = None;
                    // The watched entry each view is about, and our deployment in it.
                    let of: Vec<usize> = views
                        .iter()
                        .map(|view| {
                            watched
                                .iter()
                                .position(|w| w.verdict.is_none() && w.service == view.name)
                                .expect("described because pending")
                        })
                        .collect();
                    let mut looked_at: Vec<Looked> = vec![Looked::default(); watched.len()];
                    for (view, &k) in views.iter().zip(&of) {
                        looked_at[k] = Looked::at(view, &watched[k].deployment);
                    }
                    let (made, slow) = self.read_service_deployments(watched, &looked_at).await;
                    calls += made;
                    slowed |= slow;
                    let now = Instant::now();
                    let timed_out = round >= deadline;
                    let due: Vec<(usize, i32, usize)> = of
                        .iter()
                        .enumerate()
                        .filter_map(|(i, &k)| {
                            let w = &watched[k];
                            let ours = looked_at[k].ours;
                            let failed = ours.map_or(0, |d| d.failed);
                            let running = ours.map(|d| d.running);
                            let fell = matches!((ran[k], running), (Some(a), Some(b)) if b < a);
                            ran[k] = running.or(ran[k]);
                            let known = w.failures.len();
                            lookup_due(failed, known, fell, now - looked[k], self.poll)
                                .then_some((i, failed, known))
                        })
                        .collect();
                    let look = lookups(&due, turn, TASK_LOOKUPS_PER_POLL);
                    turn = turn.wrapping_add(TASK_LOOKUPS_PER_POLL);
                    for (i, view) in views.iter().enumerate() {
                        let k = of[i];
                        let list = look.contains(&i);
                        if list {
                            looked[k] = now;
                        }
                        let w = &mut watched[k];
                        w.last_seen = Some(last_seen(view, &w.deployment));
                        match self.observe(w, view, seen, several, list).await {
                            Ok(made) => calls += made,
                            Err(e) => {
                                // Like a failed DescribeServices: look again until the deadline.
                                calls += 1;
                                slowed |= e.kind == Kind::Throttled;
                                self.reporter.warn(format!(
                                    "{}: could not read its stopped tasks ({e})",
                                    w.service
                                ));
                                if timed_out {
                                    w.verdict = Some(Verdict::Failed(Failure::TimedOut));
                                }
                                continue;
                            }
                        }
                        let snapshot = Snapshot {
                            service_deployment: w.service_deployment_view.clone(),
                            role: w.role,
                            ours_seen: w.ours_seen,
                            task_definition: view.task_definition.clone(),
                            desired: view.desired,
                            running: view.running,
                            deployments: view.deployments.clone(),
                            failed_tasks: w.failures.iter().map(describe_stop).collect(),
                            placement_failures: w.placement,
                            timed_out,
                        };
                        let v = verdict::verdict(
                            &snapshot,
                            &w.deployment,
                            &w.task_definition,
                            self.limits,
                        );
                        let at_stage = match (&self.wait_until, &w.service_deployment_view) {
                            (Some(until), Some(sd)) if w.role == Role::Deploy => {
                                verdict::reached(until, sd).then(|| until.clone())
                            }
                            _ => None,
                        };
                        if v == Verdict::Pending && at_stage.is_some() {
                            w.reached = at_stage;
                            w.verdict = Some(Verdict::Stable {
                                nothing_running: false,
                            });
                        } else if v == Verdict::Pending {
                            let others: i32 = view
                                .deployments
                                .iter()
                                .filter(|d| d.id != w.deployment)
                                .map(|d| d.running)
                                .sum();
                            others_peak[k] = others_peak[k].max(others);
                            near |= looked_at[k]
                                .ours
                                .is_some_and(|d| verdict_near(d, others, others_peak[k]));
                            near |= w.service_deployment_view.as_ref().is_some_and(|sd| {
                                stage_near(sd, w.bake_seen.map(|t| t.elapsed()), self.poll)
                            });
                            self.progress(w, view, several);
                        } else {
                            w.verdict = Some(v);
                        }
                    }
                }
                // The SDK has retried already; one failed look is not a verdict, so look again
                // until the deadline (later, if ECS asked to slow down).
                Err(e) if Instant::now() < deadline => {
                    slowed |= e.kind == Kind::Throttled;
                    let since = *failing_since.get_or_insert_with(Instant::now);
                    self.reporter.warn(format!(
                        "could not read the deployments' state ({e}); trying again until the \
                         deadline (failing for {:.0}s)",
                        since.elapsed().as_secs_f64()
                    ))
                }
                Err(e) => {
                    self.reporter.warn(format!(
                        "could not read the deployments' state ({e}) and the time is up"
                    ));
                    for w in watched.iter_mut().filter(|w| w.verdict.is_none()) {
                        w.verdict = Some(Verdict::Failed(Failure::NoAnswer {
                            error: e.message.clone(),
                            last_seen: w.last_seen.clone(),
                        }));
                    }
                }
            }
            throttled = if slowed {
                throttled.saturating_add(1)
            } else {
                0
            };
            let failed = watched.iter().any(|w| w.failed().is_some());
            if watched.iter().all(|w| w.verdict.is_some()) || (fail_fast && failed) {
                return Ok(Ended::Decided);
            }
            let pace = Pace {
                poll: self.poll,
                near,
                throttled,
                calls,
                elapsed: began.elapsed(),
                services: watched.iter().filter(|w| w.verdict.is_none()).count(),
            };
            // The look after the deadline decides the pending ones: a throttled or budgeted
            // wait never puts it later than the plain interval would have.
            let draw = rand::random::<f64>();
            let plain = next_poll(
                &Pace {
                    throttled: 0,
                    calls: 0,
                    ..pace
                },
                draw,
            );
            let left = deadline.saturating_duration_since(Instant::now());
            let wait = next_poll(&pace, draw).min(left.max(plain));
            if throttled > 0 {
                self.reporter.warn(format!(
                    "ECS asks deckhand to slow down (throttling): looking again in {:.1}s",
                    wait.as_secs_f64()
                ));
            }
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = interrupted.recv() => return Ok(Ended::Interrupted),
            }
        }
    }

    /// Finds and reads the pending deployments' service deployments (one
    /// DescribeServiceDeployments for all that are found), printing stage changes and paused
    /// hooks once; returns the ECS calls made and whether ECS throttled. A failed read keeps
    /// what was read before: one missed look is not a verdict.
    async fn read_service_deployments(
        &self,
        watched: &mut [Watched],
        looked_at: &[Looked<'_>],
    ) -> (u64, bool) {
        let (mut calls, mut throttled) = (0u64, false);
        // The lookups run side by side: one after another, each retried through throttling,
        // they made a round of a large fleet last longer than the watch's deadline.
        let looking: Vec<usize> = (0..watched.len())
            .filter(|&i| {
                let w = &watched[i];
                w.verdict.is_none()
                    && matches!(w.service_deployment, Lookup::Looking(_))
                    && find_due(looked_at[i].strategy, w.role, looked_at[i].ours)
            })
            .collect();
        let found: Vec<Result<sdeploy::Found>> = {
            let ws = &*watched;
            futures_util::stream::iter(looking.iter().map(|&i| {
                let w = &ws[i];
                sdeploy::find(
                    self.client,
                    self.cluster,
                    &w.service,
                    &w.task_definition,
                    w.since,
                )
            }))
            .buffered(LOOKUPS_AT_ONCE)
            .collect()
            .await
        };
        for (&i, answer) in looking.iter().zip(found) {
            let w = &mut watched[i];
            calls += 1;
            match answer {
                Ok(sdeploy::Found::Ours(arn)) => {
                    calls += 1;
                    self.reporter
                        .step(format!("{}: service deployment {arn}", w.service));
                    w.service_deployment = Lookup::Found(arn);
                }
                Ok(sdeploy::Found::Unavailable) => {
                    self.reporter.step(format!(
                        "{}: ECS has no ServiceDeployments API here; judging by the service's \
                         deployments",
                        w.service
                    ));
                    w.service_deployment = Lookup::Unavailable;
                }
                Ok(sdeploy::Found::NotYet) => {
                    if let Lookup::Looking(n) = &mut w.service_deployment {
                        *n += u32::from(w.ours_seen);
                        if *n >= LOOKS_FOR_SERVICE_DEPLOYMENT {
                            w.service_deployment = Lookup::Unavailable;
                        }
                    }
                }
                Err(e) => {
                    throttled |= e.kind == Kind::Throttled;
                    self.reporter.warn(format!(
                        "{}: could not look up its service deployment ({e})",
                        w.service
                    ));
                }
            }
        }
        let now = Instant::now();
        let arns: Vec<String> = watched
            .iter()
            .zip(looked_at)
            .filter(|(w, l)| {
                let since = w
                    .sd_read
                    .as_ref()
                    .map(|(at, shape)| (now - *at, shape != &l.shape));
                w.verdict.is_none()
                    && read_due(w.service_deployment_view.as_ref(), w.role, l.ours)
                    && sd_due(since, self.poll)
            })
            .filter_map(|(w, _)| match &w.service_deployment {
                Lookup::Found(arn) => Some(arn.clone()),
                _ => None,
            })
            .collect();
        if arns.is_empty() {
            return (calls, throttled);
        }
        calls += arns.len().div_ceil(20) as u64;
        let read = match sdeploy::describe(self.client, &arns).await {
            Ok(read) => read,
            Err(e) => {
                self.reporter
                    .warn(format!("could not read the service deployments ({e})"));
                return (calls, throttled || e.kind == Kind::Throttled);
            }
        };
        let several = watched.len() > 1;
        for (w, l) in watched
            .iter_mut()
            .zip(looked_at)
            .filter(|(w, _)| w.verdict.is_none())
        {
            let Lookup::Found(arn) = &w.service_deployment else {
                continue;
            };
            let Some(sd) = read.iter().find(|d| &d.arn == arn) else {
                continue;
            };
            let label = if several {
                format!("{}: ", w.service)
            } else {
                String::new()
            };
            let line = verdict::describe_service_deployment(sd);
            if line != w.last_stage {
                self.reporter.step(format!("{label}{line}"));
                w.last_stage = line;
            }
            for h in sd.hooks.iter().filter(|h| h.status == "AWAITING_ACTION") {
                if w.hooks_told.insert(h.id.clone()) {
                    self.reporter.warn(format!(
                        "{label}the deployment is paused at {} awaiting action (hook {}{}); go \
                         on with `deckhand continue --cluster {} --service {}`, or add \
                         `--rollback` to roll it back",
                        sd.stage.as_deref().unwrap_or("a lifecycle stage"),
                        h.id,
                        verdict::hook_timeout(h, crate::clock::now()),
                        self.cluster,
                        w.service
                    ));
                }
            }
            w.sd_read = Some((now, l.shape.clone()));
            if sd.stage.as_deref() == Some("BAKE_TIME") {
                w.bake_seen.get_or_insert_with(Instant::now);
            } else {
                w.bake_seen = None;
            }
            w.service_deployment_view = Some(sd.clone());
        }
        (calls, throttled)
    }

    /// One look at one service: prints its new events and failed tasks and progress, counts
    /// placement failures; with `list_tasks`, looks up its stopped tasks. Returns the ECS calls
    /// it made.
    pub(crate) async fn observe(
        &self,
        w: &mut Watched,
        view: &ecs::ServiceView,
        seen: &mut Seen,
        label: bool,
        list_tasks: bool,
    ) -> Result<u64> {
        w.ours_seen |= view.deployments.iter().any(|d| d.id == w.deployment);
        for e in view.events.iter().rev() {
            if seen.events.insert(e.id.clone()) {
                self.reporter.emit(Event::ServiceEvent(e.message.clone()));
                if e.message.contains("unable to place a task") {
                    w.placement += 1;
                }
            }
        }
        if !list_tasks {
            return Ok(0);
        }
        let stopped = ecs::stopped_tasks(self.client, self.cluster, &w.deployment).await?;
        // ListTasks, and DescribeTasks for every hundred it listed.
        let mut made = 1 + stopped.len().div_ceil(100) as u64;
        for t in stopped {
            if !verdict::task_failed(&t.reason, &t.stop_code) {
                continue;
            }
            if seen.tasks.insert(t.arn.clone()) {
                self.reporter.emit(Event::TaskStopped {
                    service: label.then(|| w.service.clone()),
                    task: short(&t.arn).to_string(),
                    reason: describe_stop(&t),
                });
                made += self.show_logs(w, &t, seen, label).await;
            }
            if !w.failures.iter().any(|f| f.arn == t.arn) {
                w.failures.push(t);
            }
        }
        Ok(made)
    }

    /// Reads and shows the last log lines of a failed task's essential containers (the first
    /// [`LOGGED_TASKS`] of a deployment); returns the ECS calls it made.
    async fn show_logs(
        &self,
        w: &mut Watched,
        t: &StoppedTask,
        seen: &mut Seen,
        label: bool,
    ) -> u64 {
        let Some(logs) = &self.logs else { return 0 };
        if w.logs.len() >= LOGGED_TASKS {
            if !std::mem::replace(&mut w.logs_capped, true) {
                self.reporter.step(format!(
                    "{}logs are shown for the first {LOGGED_TASKS} failed tasks only",
                    if label {
                        format!("{}: ", w.service)
                    } else {
                        String::new()
                    }
                ));
            }
            return 0;
        }
        let mut made = 0;
        if !seen.containers.contains_key(&w.task_definition) {
            made += 1;
            let ecs = ecs::Ecs::from_client(self.client.clone());
            match ecs::describe_task_definition(&ecs, &w.task_definition).await {
                Ok(v) => {
                    let body = v.get("taskDefinition").cloned().unwrap_or(v);
                    seen.containers
                        .insert(w.task_definition.clone(), tasklogs::containers(&body));
                }
                Err(e) => {
                    self.reporter
                        .warn(format!("cannot tell where the task's containers log: {e}"));
                    return made;
                }
            }
        }
        let containers = &seen.containers[&w.task_definition];
        let task = short(&t.arn).to_string();
        let got = tasklogs::last_lines(logs, containers, &task, self.log_lines).await;
        let service = label.then_some(w.service.as_str());
        for event in tasklogs::events(service, &task, &got) {
            self.reporter.emit(event);
        }
        w.logs.insert(t.arn.clone(), got);
        made
    }

    /// Prints how a pending deployment is doing, when that changed since the last poll.
    fn progress(&self, w: &mut Watched, view: &ecs::ServiceView, label: bool) {
        let Some(d) = view.deployments.iter().find(|d| d.id == w.deployment) else {
            return;
        };
        let progress = format!(
            "{}waiting: {} running of {} desired ({})",
            if label {
                format!("{}: ", w.service)
            } else {
                String::new()
            },
            d.running,
            d.desired,
            d.rollout_state
                .as_ref()
                .map_or("rollout state unknown", RolloutState::as_str)
        );
        if progress != w.last_progress {
            self.reporter.step(progress.clone());
            w.last_progress = progress;
        }
    }
}

/// The service in a line, as read: "web on web:2; ours: PRIMARY ecs-svc/1 web:3 IN_PROGRESS,
/// 1 of 2 running".
pub fn last_seen(view: &ecs::ServiceView, ours: &str) -> String {
    let deployment = view
        .deployments
        .iter()
        .find(|d| d.id == ours)
        .map_or_else(|| "not listed".to_string(), describe_deployment);
    format!(
        "{} on {}, {} of {} running; ours: {deployment}",
        view.name,
        short(&view.task_definition),
        view.running,
        view.desired
    )
}

/// One deployment in a line: "PRIMARY ecs-svc/1 web:3 IN_PROGRESS, 1 of 2 running".
pub fn describe_deployment(d: &verdict::DeploymentView) -> String {
    let mut line = format!(
        "{} {} {} {}, {} of {} running",
        d.status,
        d.id,
        short(&d.task_definition),
        d.rollout_state
            .as_ref()
            .map_or("(no rollout state)", RolloutState::as_str),
        d.running,
        d.desired
    );
    if d.pending > 0 {
        line.push_str(&format!(", {} pending", d.pending));
    }
    if let Some(r) = d.rollout_reason.as_deref().filter(|r| !r.is_empty()) {
        line.push_str(&format!(" ({r})"));
    }
    line
}

/// How often to look when a verdict is near: it is then reported within a second (0.4 s on
/// average) of ECS reaching it, without polling that fast through the whole rollout, and the
/// quick looks of a short rollout cost no more a minute than ecs-deploy's.
pub const NEAR_POLL: Duration = Duration::from_millis(750);

/// The longest a run of throttled answers stretches the interval to (or `poll`, if longer).
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The watch's budget of ECS calls, per service watched: on average at most this many per
/// `poll`. Looking every `poll` costs one and a half (DescribeServices, and ListTasks every
/// other `poll`), two and a half for a blue/green, linear or canary deployment (its service
/// deployment too); the rest pays for the quicker looks near a verdict. With the default 3 s
/// poll that is 60 calls a minute, what ecs-deploy makes at its default one-second sleep at
/// the most (one DescribeServices call a second plus the time the call takes; 66 to 99 a
/// minute measured on the sandbox).
pub const CALLS_PER_POLL: f64 = 3.0;

/// Calls per service the watch may make beyond [`CALLS_PER_POLL`], so that the quick looks of
/// a short rollout do not wait for the budget to fill up.
pub const CALLS_ALLOWANCE: f64 = 4.0;

/// What the interval before the next look depends on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pace {
    /// `--poll`.
    pub poll: Duration,
    /// A verdict may come any moment ([`verdict_near`]).
    pub near: bool,
    /// Polls in a row that ECS answered with throttling (after the SDK's own retries).
    pub throttled: u32,
    /// ECS calls the watch has made so far, and how long it has run.
    pub calls: u64,
    pub elapsed: Duration,
    /// Services still pending.
    pub services: usize,
}

/// What one DescribeServices round showed of a watched service: our deployment, the service's
/// strategy and the shape of its `deployments[]`.
#[derive(Debug, Clone, Default)]
pub struct Looked<'v> {
    pub ours: Option<&'v DeploymentView>,
    pub strategy: Option<&'v str>,
    pub shape: Vec<String>,
}

impl<'v> Looked<'v> {
    pub fn at(view: &'v ecs::ServiceView, deployment: &str) -> Self {
        Looked {
            ours: view.deployments.iter().find(|d| d.id == deployment),
            strategy: view.strategy.as_deref(),
            shape: shape(&view.deployments),
        }
    }
}

/// The deployments a service lists, each with its status and rollout state (pure): what
/// changes when a deployment starts, ends, fails or leaves, and not as tasks come and go.
pub fn shape(deployments: &[DeploymentView]) -> Vec<String> {
    deployments
        .iter()
        .map(|d| format!("{} {:?} {:?}", d.id, d.status, d.rollout_state))
        .collect()
}

/// Whether a found service deployment is read on this look (pure; `since` is how long ago it
/// was last read and whether `deployments[]` changed shape since, `None` if never): on the
/// first look, once a `poll` has passed (the fifth off absorbs the jitter), and on a quick look
/// only where `deployments[]` shows a change. A quick look near a verdict so costs one call,
/// DescribeServices: the end of a blue/green, linear or canary deployment shows there first, as
/// its old deployment leaves.
pub fn sd_due(since: Option<(Duration, bool)>, poll: Duration) -> bool {
    match since {
        None => true,
        Some((ago, changed)) => changed || ago.saturating_mul(5) >= poll.saturating_mul(4),
    }
}

/// Whether this poll reads a found service deployment again (pure). Always, but for a rolling
/// update that ECS still shows as our PRIMARY deployment IN_PROGRESS: there `deployments[]`
/// tells first when anything changes (completed, failed, rolled back, replaced), and the service
/// deployment is read in that same poll for the verdict. This keeps a rolling watch at about the
/// calls it made before ServiceDeployments.
pub fn read_due(
    seen: Option<&ServiceDeployment>,
    role: Role,
    ours: Option<&DeploymentView>,
) -> bool {
    let Some(sd) = seen else {
        return true;
    };
    let rolling_in_progress = sd.strategy.as_deref() == Some("ROLLING")
        && matches!(sd.status.as_str(), "PENDING" | "IN_PROGRESS");
    !(role == Role::Deploy && rolling_in_progress && primary_in(ours, RolloutState::InProgress))
}

/// Whether this poll looks for the service deployment a deploy started (pure). Not for a
/// ROLLING service (ECS's default) while ECS shows our deployment as PRIMARY and IN_PROGRESS,
/// nor once it shows it PRIMARY and COMPLETED: a rolling deployment completes only after its
/// alarms' bake, so that is its success, read in the same poll. It is looked for when
/// `deployments[]` shows anything else (failed, replaced, rolled back), for ECS's own account of
/// why. A rolling watch so costs the calls, and answers as soon, as before ServiceDeployments.
pub fn find_due(strategy: Option<&str>, role: Role, ours: Option<&DeploymentView>) -> bool {
    !(role == Role::Deploy
        && strategy.unwrap_or("ROLLING") == "ROLLING"
        && (primary_in(ours, RolloutState::InProgress)
            || primary_in(ours, RolloutState::Completed)))
}

/// Our deployment, as `deployments[]` shows it, is ECS's PRIMARY with rollout state `state`.
fn primary_in(ours: Option<&DeploymentView>, state: RolloutState) -> bool {
    ours.is_some_and(|d| d.status == DeploymentStatus::Primary && d.rollout_state == Some(state))
}

/// The interval before the next look (pure; `draw` is uniform in [0, 1) and gives the ±20 %
/// jitter, so many pipelines do not poll in step): `poll`, or [`NEAR_POLL`] when a verdict is
/// near; doubled for each throttled poll in a row ([`backoff`]); and never so soon that the
/// watch would average more than its budget ([`budget_wait`]).
pub fn next_poll(pace: &Pace, draw: f64) -> Duration {
    let wanted = if pace.throttled > 0 {
        backoff(pace.poll, pace.throttled)
    } else if pace.near {
        pace.poll.min(NEAR_POLL)
    } else {
        pace.poll
    };
    let jittered = wanted.mul_f64(0.8 + 0.4 * draw.clamp(0.0, 1.0));
    jittered.max(budget_wait(pace))
}

/// The interval after `throttled` throttled polls in a row (pure): `poll` doubled each time, at
/// most [`MAX_BACKOFF`] (or `poll`, if that is longer).
pub fn backoff(poll: Duration, throttled: u32) -> Duration {
    let cap = MAX_BACKOFF.max(poll);
    poll.saturating_mul(2u32.saturating_pow(throttled.min(31)))
        .min(cap)
}

/// The shortest wait that keeps the watch within its budget after one more DescribeServices
/// round (pure): by time `t` it may have made `services × (CALLS_ALLOWANCE + CALLS_PER_POLL ×
/// t / poll)` calls.
pub fn budget_wait(pace: &Pace) -> Duration {
    let services = pace.services.max(1);
    let round = services.div_ceil(ecs::DESCRIBE_BATCH) as f64;
    let per_service = (pace.calls as f64 + round) / services as f64 - CALLS_ALLOWANCE;
    if per_service <= 0.0 {
        return Duration::ZERO;
    }
    pace.poll
        .mul_f64(per_service / CALLS_PER_POLL)
        .saturating_sub(pace.elapsed)
}

/// Whether the verdict on deployment `ours` may come any moment (pure). Where the service ran
/// other tasks, when ECS has begun stopping them: a rolling update stops old tasks once enough
/// new ones are healthy (minimumHealthyPercent), so this comes after the new tasks' health
/// checks, and shows even where ECS's count of the new tasks lags (it may read 0 running until
/// the rollout completes). Where there were none, when all of ours run. `others` is what the
/// service's other deployments run now, `others_peak` the most seen this watch.
pub fn verdict_near(ours: &verdict::DeploymentView, others: i32, others_peak: i32) -> bool {
    if others_peak > 0 {
        others < others_peak
    } else {
        ours.desired > 0 && ours.running >= ours.desired
    }
}

/// Whether the stage a service deployment is in may end it any moment (pure): CLEAN_UP (the
/// last; it ends as the old tasks are gone, which `deployments[]` shows), or the last seconds
/// of BAKE_TIME (seen in it for `baked`; [`bake_ending`]).
pub fn stage_near(sd: &ServiceDeployment, baked: Option<Duration>, poll: Duration) -> bool {
    match (sd.stage.as_deref(), sd.bake_minutes, baked) {
        (Some("CLEAN_UP"), _, _) => true,
        (Some("BAKE_TIME"), Some(minutes), Some(baked)) => bake_ending(minutes, baked, poll),
        _ => false,
    }
}

/// Whether the bake of a service deployment seen in BAKE_TIME for `baked` may end any moment
/// (pure): ECS ends it `minutes` after the stage began, which was at most one `poll` (and a
/// jitter) before the watch first saw it; the look before that window comes up to another
/// `poll` earlier. A bake of hours is watched at `poll` until its last seconds.
pub fn bake_ending(minutes: i32, baked: Duration, poll: Duration) -> bool {
    let bake = Duration::from_secs(60 * u64::try_from(minutes.max(0)).unwrap_or(0));
    baked + poll.mul_f64(2.4) >= bake
}

/// Whether a deployment's stopped tasks are due a look (ListTasks) this poll (pure): at once
/// when ECS counts more failed tasks than deckhand has seen, or fewer of its tasks run than at
/// the previous poll (one stopped: ECS's failed count stops counting once a task has run); else
/// every other `poll` or so, for what neither shows (the first that far into the watch: a
/// deployment that has just begun has stopped nothing). The fifth off absorbs the jitter.
pub fn lookup_due(
    failed: i32,
    known: usize,
    running_fell: bool,
    since_last: Duration,
    poll: Duration,
) -> bool {
    (failed > 0 && failed as usize > known)
        || running_fell
        || since_last.saturating_mul(5) >= poll.saturating_mul(8)
}

/// `poll` ± 20 %, so many pipelines do not poll in step.
fn jittered(poll: Duration) -> Duration {
    let factor = 0.8 + 0.4 * rand::random::<f64>();
    poll.mul_f64(factor)
}

/// The last part of an ARN: a task's id, a task definition's `family:revision`.
pub fn short(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

/// "reason (container app exited 3: …)" for a stopped task.
pub fn describe_stop(t: &StoppedTask) -> String {
    let containers: Vec<String> = t
        .containers
        .iter()
        .map(|(name, code, reason)| {
            let code = code.map(|c| format!(" exit code {c}")).unwrap_or_default();
            let reason = if reason.is_empty() {
                String::new()
            } else {
                format!(": {reason}")
            };
            format!("{name}{code}{reason}")
        })
        .collect();
    format!("{} ({})", t.reason, containers.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    const S3: Duration = Duration::from_secs(3);

    fn pace(near: bool, throttled: u32, calls: u64, elapsed_ms: u64) -> Pace {
        Pace {
            poll: S3,
            near,
            throttled,
            calls,
            elapsed: Duration::from_millis(elapsed_ms),
            services: 1,
        }
    }

    /// Our deployment as `deployments[]` shows it, with its status and rollout state.
    fn dep(status: DeploymentStatus, rollout: Option<RolloutState>) -> DeploymentView {
        DeploymentView {
            id: "ecs-svc/1".into(),
            status,
            task_definition: "td:2".into(),
            rollout_state: rollout,
            rollout_reason: None,
            desired: 1,
            running: 0,
            pending: 1,
            failed: 0,
        }
    }

    #[test]
    fn a_rolling_deployment_in_progress_is_read_again_only_once_deployments_show_a_change() {
        let sd = |strategy: &str, status: &str| ServiceDeployment {
            strategy: Some(strategy.into()),
            status: status.into(),
            ..Default::default()
        };
        use DeploymentStatus::{Active, Primary};
        use RolloutState::{Completed, Failed, InProgress};
        let going = dep(Primary, Some(InProgress));
        // (service deployment seen, role, ours in deployments[], read again)
        let cases = [
            (None, Role::Deploy, Some(going.clone()), true),
            (
                Some(sd("ROLLING", "IN_PROGRESS")),
                Role::Deploy,
                Some(going.clone()),
                false,
            ),
            (
                Some(sd("ROLLING", "PENDING")),
                Role::Deploy,
                Some(going.clone()),
                false,
            ),
            (
                Some(sd("ROLLING", "IN_PROGRESS")),
                Role::Deploy,
                Some(dep(Primary, Some(Completed))),
                true,
            ),
            (
                Some(sd("ROLLING", "IN_PROGRESS")),
                Role::Deploy,
                Some(dep(Primary, Some(Failed))),
                true,
            ),
            (
                Some(sd("ROLLING", "IN_PROGRESS")),
                Role::Deploy,
                Some(dep(Active, Some(InProgress))),
                true,
            ),
            (
                Some(sd("ROLLING", "IN_PROGRESS")),
                Role::Deploy,
                Some(dep(Primary, None)),
                true,
            ),
            (Some(sd("ROLLING", "IN_PROGRESS")), Role::Deploy, None, true),
            (
                Some(sd("ROLLING", "ROLLBACK_IN_PROGRESS")),
                Role::Deploy,
                Some(going.clone()),
                true,
            ),
            (
                Some(sd("ROLLING", "IN_PROGRESS")),
                Role::Rollback,
                Some(going.clone()),
                true,
            ),
            (
                Some(sd("BLUE_GREEN", "IN_PROGRESS")),
                Role::Deploy,
                Some(going.clone()),
                true,
            ),
            (
                Some(sd("CANARY", "IN_PROGRESS")),
                Role::Deploy,
                Some(going.clone()),
                true,
            ),
        ];
        for (i, (seen, role, ours, want)) in cases.into_iter().enumerate() {
            assert_eq!(
                read_due(seen.as_ref(), role, ours.as_ref()),
                want,
                "case {i}"
            );
        }
    }

    #[test]
    fn a_rolling_deployments_service_deployment_is_looked_for_once_deployments_show_a_change() {
        use DeploymentStatus::{Active, Primary};
        use RolloutState::{Completed, Failed, InProgress};
        let going = Some(dep(Primary, Some(InProgress)));
        // (the service's strategy, role, ours in deployments[], looked for now)
        let cases = [
            (Some("ROLLING"), Role::Deploy, going.clone(), false),
            (None, Role::Deploy, going.clone(), false), // ECS's default is ROLLING
            (
                Some("ROLLING"),
                Role::Deploy,
                Some(dep(Primary, Some(Completed))),
                false, // its success, with no need of ECS's account
            ),
            (
                Some("ROLLING"),
                Role::Deploy,
                Some(dep(Primary, Some(Failed))),
                true,
            ),
            (
                Some("ROLLING"),
                Role::Deploy,
                Some(dep(Active, Some(InProgress))),
                true,
            ),
            (
                Some("ROLLING"),
                Role::Deploy,
                Some(dep(Primary, None)),
                true,
            ),
            (Some("ROLLING"), Role::Deploy, None, true), // not seen yet, or gone
            (Some("ROLLING"), Role::Rollback, going.clone(), true),
            (Some("BLUE_GREEN"), Role::Deploy, going.clone(), true),
            (Some("LINEAR"), Role::Deploy, going.clone(), true),
            (Some("CANARY"), Role::Deploy, going.clone(), true),
        ];
        for (i, (strategy, role, ours, want)) in cases.into_iter().enumerate() {
            assert_eq!(find_due(strategy, role, ours.as_ref()), want, "case {i}");
        }
    }

    #[test]
    fn the_interval_follows_nearness_throttling_and_the_budget() {
        let ms = Duration::from_millis;
        // (pace, draw, interval); draw 0.5 is the jitter's middle, 0 and 1 its ends
        let cases = [
            (pace(false, 0, 1, 0), 0.5, S3),
            (pace(false, 0, 1, 0), 0.0, ms(2400)),
            (pace(false, 0, 1, 0), 1.0, ms(3600)),
            (pace(true, 0, 3, 3000), 0.5, NEAR_POLL),
            (pace(true, 0, 3, 3000), 0.0, ms(600)),
            // throttled: doubled per poll in a row from `poll`, near or not, at most 30 s
            (pace(false, 1, 1, 0), 0.5, ms(6000)),
            (pace(true, 1, 1, 0), 0.5, ms(6000)),
            (pace(false, 2, 2, 6000), 0.5, ms(12000)),
            (pace(false, 3, 3, 18000), 0.5, ms(24000)),
            (pace(false, 4, 4, 42000), 0.5, MAX_BACKOFF),
            (pace(false, 40, 40, 600_000), 1.0, ms(36000)),
            // the budget: 4 + 3 per 3 s; 12 calls after 4 s may make the 13th at 9 s
            (pace(true, 0, 12, 4000), 0.5, ms(5000)),
            (pace(true, 0, 6, 4500), 0.5, NEAR_POLL),
            // a budget wait is not shortened by jitter, and far polls stay far
            (pace(true, 0, 12, 4000), 0.0, ms(5000)),
            (pace(false, 0, 12, 4000), 1.0, ms(5000)),
            (pace(false, 0, 10, 9000), 0.5, S3),
        ];
        for (p, draw, want) in cases {
            let got = next_poll(&p, draw);
            let diff = got.abs_diff(want);
            assert!(diff < ms(2), "{p:?} draw {draw}: {got:?}, not {want:?}");
        }
        let quick = Pace {
            poll: ms(200),
            ..pace(true, 0, 1, 0)
        };
        assert_eq!(next_poll(&quick, 0.5), ms(200), "never slower than asked");
    }

    #[test]
    fn throttled_intervals_double_up_to_a_cap() {
        let s = Duration::from_secs;
        for (poll, throttled, want) in [
            (s(3), 0, s(3)),
            (s(3), 1, s(6)),
            (s(3), 2, s(12)),
            (s(3), 3, s(24)),
            (s(3), 4, s(30)),
            (s(3), u32::MAX, s(30)),
            (Duration::from_millis(200), 3, Duration::from_millis(1600)),
            (s(60), 2, s(60)), // a poll above the cap is the cap
        ] {
            assert_eq!(backoff(poll, throttled), want, "{poll:?} × {throttled}");
        }
    }

    #[test]
    fn the_budget_scales_with_the_services_watched() {
        let s = Duration::from_secs;
        let ms = Duration::from_millis;
        // (services, calls, elapsed, wait)
        for (services, calls, elapsed, want) in [
            (1, 0, s(0), Duration::ZERO),
            (1, 3, s(0), Duration::ZERO), // the allowance: the 4th call at once
            (1, 4, s(0), ms(1000)),       // the 5th at (5 − 4) / 3 × 3 s
            (1, 4, s(10), Duration::ZERO),
            (1, 100, s(90), ms(7000)), // long past the allowance: the 101st at 97 s
            (10, 30, s(0), Duration::ZERO),
            (50, 200, s(0), ms(100)), // 5 DescribeServices a round
            (0, 4, s(0), ms(1000)),   // as for one
        ] {
            let p = Pace {
                services,
                calls,
                elapsed,
                ..pace(true, 0, 0, 0)
            };
            let got = budget_wait(&p);
            assert!(
                got.abs_diff(want) < Duration::from_millis(2),
                "{services} services, {calls} calls at {elapsed:?}: {got:?}, not {want:?}"
            );
        }
    }

    fn ours(running: i32, desired: i32) -> verdict::DeploymentView {
        verdict::DeploymentView {
            id: "ecs-svc/2".into(),
            status: DeploymentStatus::Primary,
            task_definition: "web:2".into(),
            rollout_state: Some(RolloutState::InProgress),
            rollout_reason: None,
            desired,
            running,
            pending: desired - running,
            failed: 0,
        }
    }

    #[test]
    fn a_verdict_is_near_when_the_old_tasks_are_stopping_or_else_when_ours_all_run() {
        // (ours running, desired, others running, others' peak, near)
        for (running, desired, others, peak, near) in [
            (0, 2, 2, 2, false), // starting
            (2, 2, 2, 2, false), // ours run, health checks may still be pending: the old stay
            (2, 2, 1, 2, true),  // ECS stops the old tasks: ours are healthy
            (0, 2, 1, 2, true),  // the same where ECS's counts of ours lag
            (0, 2, 0, 2, true),
            (1, 2, 0, 0, false), // nothing old: when all ours run
            (2, 2, 0, 0, true),
            (3, 2, 0, 0, true),
            (0, 0, 0, 0, false), // desiredCount 0: nothing to wait for nearby
        ] {
            assert_eq!(
                verdict_near(&ours(running, desired), others, peak),
                near,
                "ours {running}/{desired}, others {others} of {peak}"
            );
        }
    }

    #[test]
    fn a_service_deployment_is_near_its_end_in_clean_up_and_the_last_seconds_of_its_bake() {
        let s = Duration::from_secs;
        let at = |stage: &str| ServiceDeployment {
            stage: Some(stage.into()),
            bake_minutes: Some(1),
            ..Default::default()
        };
        // (stage, seen in BAKE_TIME for, near)
        for (stage, baked, near) in [
            ("CLEAN_UP", None, true),
            ("BAKE_TIME", Some(s(0)), false),
            ("BAKE_TIME", Some(s(55)), true),
            ("BAKE_TIME", None, false), // not timed: the watch did not see it begin
            ("PRODUCTION_TRAFFIC_SHIFT", None, false),
            ("SCALE_UP", None, false),
        ] {
            assert_eq!(
                stage_near(&at(stage), baked, s(3)),
                near,
                "{stage} {baked:?}"
            );
        }
        let unknown_bake = ServiceDeployment {
            stage: Some("BAKE_TIME".into()),
            ..Default::default()
        };
        assert!(!stage_near(&unknown_bake, Some(s(600)), s(3)));
    }

    #[test]
    fn a_service_deployment_is_read_each_poll_and_on_quick_looks_when_deployments_change() {
        let ms = Duration::from_millis;
        // (last read: how long ago, deployments[] changed since; read now)
        for (since, due) in [
            (None, true),
            (Some((ms(750), false)), false), // a quick look: DescribeServices is enough
            (Some((ms(750), true)), true),   // the old deployment left, or ours changed
            (Some((ms(2399), false)), false),
            (Some((ms(2400), false)), true), // a poll, less the jitter
            (Some((ms(3000), false)), true),
        ] {
            assert_eq!(sd_due(since, Duration::from_secs(3)), due, "{since:?}");
        }
    }

    #[test]
    fn the_shape_of_deployments_changes_as_deployments_come_go_and_end_not_as_tasks_run() {
        use DeploymentStatus::{Active, Primary};
        use RolloutState::{Completed, InProgress};
        let mut green = dep(Primary, Some(InProgress));
        let mut blue = dep(Active, Some(Completed));
        blue.id = "ecs-svc/0".into();
        let both = shape(&[green.clone(), blue.clone()]);
        green.running = 1;
        blue.running = 0;
        assert_eq!(
            shape(&[green.clone(), blue.clone()]),
            both,
            "counts do not count"
        );
        assert_ne!(shape(&[green.clone()]), both, "the old deployment left");
        green.rollout_state = Some(Completed);
        assert_ne!(shape(&[green, blue]), both, "ours completed");
    }

    #[test]
    fn a_bake_is_near_its_end_within_two_jittered_polls_of_it() {
        let s = Duration::from_secs;
        // (bake minutes, seen in BAKE_TIME for, poll, near)
        for (minutes, baked, poll, near) in [
            (0, s(0), s(3), true), // no bake: the verdict follows at once
            (1, s(0), s(3), false),
            (1, s(30), s(10), false),
            (1, s(52), s(3), false),
            (1, s(53), s(3), true), // 53 + 3.6 + 3.6 ≥ 60
            (1, s(90), s(3), true), // overdue: ECS may be slow to end it
            (60, s(3590), s(3), false),
            (60, s(3593), s(3), true),
            (1, s(37), s(10), true), // a longer poll looks quickly sooner
            (-1, s(0), s(3), true),  // nonsense from ECS reads as no bake
        ] {
            assert_eq!(
                bake_ending(minutes, baked, poll),
                near,
                "bake {minutes} min, seen for {baked:?}, poll {poll:?}"
            );
        }
    }

    #[test]
    fn stopped_tasks_are_looked_up_on_new_failures_on_fewer_running_or_every_other_poll() {
        let s3 = Duration::from_secs(3);
        let ms = Duration::from_millis;
        // (ECS failed count, failures known, fewer running than at the previous poll, since
        // the last look, due)
        for (failed, known, fell, since, due) in [
            (0, 0, false, ms(0), false), // the watch's first look: nothing has stopped yet
            (0, 0, false, ms(3000), false),
            (0, 0, false, ms(4799), false),
            (0, 0, false, ms(4800), true), // two polls, less the jitter
            (0, 0, false, ms(7200), true),
            (1, 0, false, ms(0), true), // ECS counts a failure deckhand has not seen
            (2, 1, false, ms(500), true),
            (2, 2, false, ms(500), false), // all seen already
            (1, 3, false, ms(500), false), // ECS's count resets once a task runs
            (0, 1, true, ms(500), true),   // one of ours stopped after it ran
            (-1, 0, false, ms(500), false),
        ] {
            assert_eq!(
                lookup_due(failed, known, fell, since, s3),
                due,
                "failed {failed}, known {known}, fell {fell}, {since:?} since"
            );
        }
    }

    #[test]
    fn stopped_task_lookups_are_bounded_and_failures_go_first() {
        let few: Vec<(usize, i32, usize)> = (0..3).map(|i| (i, 0, 0)).collect();
        assert_eq!(lookups(&few, 7, 10), vec![0, 1, 2], "all when they fit");
        let many: Vec<(usize, i32, usize)> = (0..25).map(|i| (i, 0, 0)).collect();
        assert_eq!(lookups(&many, 0, 10), (0..10).collect::<Vec<_>>());
        assert_eq!(
            lookups(&many, 20, 10),
            vec![20, 21, 22, 23, 24, 0, 1, 2, 3, 4]
        );
        let mut failing = many.clone();
        failing[17] = (17, 2, 1); // ECS counts a failure deckhand has not seen
        failing[3] = (3, 1, 1); // already known
        let chosen = lookups(&failing, 0, 10);
        assert_eq!(chosen[0], 17);
        assert_eq!(chosen.len(), 10);
    }
}
