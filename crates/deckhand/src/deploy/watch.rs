//! Watching deployments to verdicts: one service or several at once (DescribeServices takes ten
//! per call), polled on a short jittered interval; each new service event and each failed task
//! is printed once, and the verdict function decides.

use std::collections::HashSet;
use std::time::Duration;

use aws_sdk_ecs::Client;
use tokio::time::Instant;

use super::verdict::{self, Failure, Limits, Snapshot, Verdict};
use crate::aws::ecs::{self, StoppedTask};
use crate::aws::types::{DeploymentStatus, RolloutState};
use crate::error::{Error, Result};
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

/// Where and how to watch.
pub struct Watcher<'a> {
    pub reporter: &'a Reporter,
    pub client: &'a Client,
    pub cluster: &'a str,
    pub poll: Duration,
    pub limits: Limits,
}

/// What has been printed already, across a deploy and its rollback.
#[derive(Debug, Default)]
pub struct Seen {
    events: HashSet<String>,
    tasks: HashSet<String>,
}

impl Seen {
    /// Everything `views` show counts as seen: only what happens after them is printed.
    pub fn after(views: &[ecs::ServiceView]) -> Self {
        Seen {
            events: views
                .iter()
                .flat_map(|v| v.events.iter().map(|e| e.id.clone()))
                .collect(),
            tasks: HashSet::new(),
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
    placement: u32,
    ours_seen: bool,
    last_progress: String,
}

impl Watched {
    pub fn new(service: &str, deployment: &str, task_definition: &str) -> Self {
        Watched {
            service: service.to_string(),
            deployment: deployment.to_string(),
            task_definition: task_definition.to_string(),
            verdict: None,
            failures: Vec::new(),
            placement: 0,
            ours_seen: false,
            last_progress: String::new(),
        }
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
    /// first failure), `deadline` passes (the pending ones time out), or a signal arrives.
    pub async fn watch(
        &self,
        watched: &mut [Watched],
        deadline: Instant,
        seen: &mut Seen,
        interrupted: &mut Interrupts,
        fail_fast: bool,
    ) -> Result<Ended> {
        let several = watched.len() > 1;
        let mut turn = 0usize;
        loop {
            // Set when a deployment has all its tasks running: its verdict is near.
            let mut near = false;
            let pending: Vec<String> = watched
                .iter()
                .filter(|w| w.verdict.is_none())
                .map(|w| w.service.clone())
                .collect();
            match ecs::describe_services(self.client, self.cluster, &pending).await {
                Ok(views) => {
                    let timed_out = Instant::now() >= deadline;
                    let pending: Vec<(usize, i32, usize)> = views
                        .iter()
                        .enumerate()
                        .map(|(i, view)| {
                            let w = watched
                                .iter()
                                .find(|w| w.verdict.is_none() && w.service == view.name);
                            let failed = w
                                .and_then(|w| {
                                    view.deployments.iter().find(|d| d.id == w.deployment)
                                })
                                .map_or(0, |d| d.failed);
                            (i, failed, w.map_or(0, |w| w.failures.len()))
                        })
                        .collect();
                    let look = lookups(&pending, turn, TASK_LOOKUPS_PER_POLL);
                    turn = turn.wrapping_add(TASK_LOOKUPS_PER_POLL);
                    for (i, view) in views.iter().enumerate() {
                        let w = watched
                            .iter_mut()
                            .find(|w| w.verdict.is_none() && w.service == view.name)
                            .expect("described because pending");
                        if let Err(e) = self
                            .observe(w, view, seen, several, look.contains(&i))
                            .await
                        {
                            // Like a failed DescribeServices: look again until the deadline.
                            self.reporter.warn(format!(
                                "{}: could not read its stopped tasks ({e})",
                                w.service
                            ));
                            if timed_out {
                                w.verdict = Some(Verdict::Failed(Failure::TimedOut));
                            }
                            continue;
                        }
                        let snapshot = Snapshot {
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
                        if v == Verdict::Pending {
                            near |= view.deployments.iter().any(|d| {
                                d.id == w.deployment && d.desired > 0 && d.running >= d.desired
                            });
                            self.progress(w, view, several);
                        } else {
                            w.verdict = Some(v);
                        }
                    }
                }
                // The SDK has retried already; one failed look is not a verdict, so look again
                // until the deadline.
                Err(e) if Instant::now() < deadline => self.reporter.warn(format!(
                    "could not read the deployments' state ({e}); trying again"
                )),
                Err(e) => {
                    self.reporter.warn(format!(
                        "could not read the deployments' state ({e}) and the time is up"
                    ));
                    for w in watched.iter_mut().filter(|w| w.verdict.is_none()) {
                        w.verdict = Some(Verdict::Failed(Failure::TimedOut));
                    }
                }
            }
            let failed = watched.iter().any(|w| w.failed().is_some());
            if watched.iter().all(|w| w.verdict.is_some()) || (fail_fast && failed) {
                return Ok(Ended::Decided);
            }
            tokio::select! {
                _ = tokio::time::sleep(jittered(next_poll(self.poll, near))) => {}
                _ = interrupted.recv() => return Ok(Ended::Interrupted),
            }
        }
    }

    /// One look at one service: prints its new events and failed tasks and progress, counts
    /// placement failures.
    async fn observe(
        &self,
        w: &mut Watched,
        view: &ecs::ServiceView,
        seen: &mut Seen,
        label: bool,
        list_tasks: bool,
    ) -> Result<()> {
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
            return Ok(());
        }
        for t in ecs::stopped_tasks(self.client, self.cluster, &w.deployment).await? {
            if !verdict::task_failed(&t.reason, &t.stop_code) {
                continue;
            }
            if seen.tasks.insert(t.arn.clone()) {
                self.reporter.emit(Event::TaskStopped {
                    service: label.then(|| w.service.clone()),
                    task: short(&t.arn).to_string(),
                    reason: describe_stop(&t),
                });
            }
            if !w.failures.iter().any(|f| f.arn == t.arn) {
                w.failures.push(t);
            }
        }
        Ok(())
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

/// How often to look when a verdict is near (every task of a deployment running): the verdict
/// is then reported within about a second of ECS reaching it, without polling that fast
/// through the whole rollout.
pub const NEAR_POLL: Duration = Duration::from_secs(1);

/// The interval before the next look (pure).
pub fn next_poll(poll: Duration, near: bool) -> Duration {
    if near {
        poll.min(NEAR_POLL)
    } else {
        poll
    }
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

    #[test]
    fn polling_quickens_when_a_verdict_is_near() {
        let poll = Duration::from_secs(3);
        assert_eq!(next_poll(poll, false), poll);
        assert_eq!(next_poll(poll, true), NEAR_POLL);
        let quick = Duration::from_millis(200);
        assert_eq!(next_poll(quick, true), quick, "never slower than asked");
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
