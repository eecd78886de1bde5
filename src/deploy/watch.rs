//! Watching one deployment to a verdict: polls the service on a short jittered interval, prints
//! each new service event and each failed task once, and asks the verdict function.

use std::collections::HashSet;
use std::time::Duration;

use aws_sdk_ecs::Client;
use tokio::time::Instant;
use tracing::{info, warn};

use super::verdict::{self, Limits, Snapshot, Verdict};
use crate::aws::ecs::{self, StoppedTask};
use crate::error::{Error, Result};

/// Where and how to watch.
pub struct Watcher<'a> {
    pub client: &'a Client,
    pub cluster: &'a str,
    pub service: &'a str,
    pub poll: Duration,
    pub limits: Limits,
}

/// What has been printed already, across the deploy and its rollback.
#[derive(Debug, Default)]
pub struct Seen {
    events: HashSet<String>,
    tasks: HashSet<String>,
}

impl Seen {
    /// Everything `view` shows counts as seen: only what happens after it is printed.
    pub fn after(view: &ecs::ServiceView) -> Self {
        Seen {
            events: view.events.iter().map(|e| e.id.clone()).collect(),
            tasks: HashSet::new(),
        }
    }
}

/// How a watch ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    Verdict(Verdict),
    /// SIGINT/SIGTERM arrived first.
    Interrupted,
}

/// The failed tasks of a watched deployment, for the summary.
pub type Failures = Vec<StoppedTask>;

impl<'a> Watcher<'a> {
    /// A watcher for `service` with the command line's settings; events from now on are new.
    pub fn new(
        client: &'a Client,
        cluster: &'a str,
        service: &'a str,
        args: &crate::cli::WatchArgs,
    ) -> Self {
        Watcher {
            client,
            cluster,
            service,
            poll: args.poll,
            limits: Limits {
                failed_tasks: args.max_failed_tasks.max(1),
                ..Limits::default()
            },
        }
    }

    /// UpdateService to `task_definition`; returns the deployment it started. When the answer
    /// is lost (timeout, dropped connection) the update may still have happened: the service is
    /// read to find out, so "nothing changed" (exit 1) is only said when it is true.
    pub async fn start(&self, task_definition: &str) -> Result<String> {
        let e = match ecs::update_service(self.client, self.cluster, self.service, task_definition)
            .await
        {
            Ok(id) => return Ok(id),
            Err(e) => e,
        };
        match ecs::describe_service(self.client, self.cluster, self.service).await {
            Ok(view) => match view.deployments.iter().find(|d| {
                d.status == "PRIMARY"
                    && super::history::same_revision(&d.task_definition, task_definition)
            }) {
                Some(d) => {
                    warn!(
                        "UpdateService reported an error ({e}), but the service took the update: \
                         following deployment {}",
                        d.id
                    );
                    Ok(d.id.clone())
                }
                None => Err(e),
            },
            Err(_) => Err(Error {
                exit: crate::error::Exit::NeedsPerson,
                message: format!(
                    "{e}. Whether the service was changed cannot be told; check it with `deckhand status`."
                ),
            }),
        }
    }

    /// Waits (up to `wait`) until no deployment is rolling out, so deckhand never starts one
    /// over another pipeline's. Returns the settled service; exit 1 if it does not settle.
    pub async fn settled(
        &self,
        wait: Duration,
        interrupted: &mut crate::signals::Interrupts,
    ) -> Result<ecs::ServiceView> {
        let deadline = Instant::now() + wait;
        let mut announced = String::new();
        loop {
            let view = ecs::describe_service(self.client, self.cluster, self.service).await?;
            let Some(d) = verdict::busy(&view.deployments) else {
                return Ok(view);
            };
            if Instant::now() >= deadline {
                return Err(Error::failed(format!(
                    "another deployment is in progress on the service: {}. {} Run again when it \
                     has finished; nothing was changed.",
                    describe_deployment(d),
                    if wait.is_zero() {
                        "--wait-for-others is 0, so deckhand did not wait.".to_string()
                    } else {
                        format!("It did not finish within --wait-for-others {wait:?}.")
                    }
                )));
            }
            if announced != d.id {
                info!(
                    "waiting up to {wait:?} for the deployment in progress to finish: {}",
                    describe_deployment(d)
                );
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

    /// Polls until `deployment` (running `task_definition`) is stable or failed, `deadline`
    /// passes, or `interrupted` resolves.
    pub async fn watch(
        &self,
        deployment: &str,
        task_definition: &str,
        deadline: Instant,
        seen: &mut Seen,
        interrupted: &mut crate::signals::Interrupts,
    ) -> Result<(Ended, Failures)> {
        let mut failures: Failures = Vec::new();
        let mut placement = 0u32;
        let mut ours_seen = false;
        let mut last_progress = String::new();
        loop {
            match self
                .observe(deployment, seen, &mut failures, &mut placement)
                .await
            {
                Ok(view) => {
                    ours_seen |= view.deployments.iter().any(|d| d.id == deployment);
                    let snapshot = Snapshot {
                        ours_seen,
                        task_definition: view.task_definition.clone(),
                        desired: view.desired,
                        running: view.running,
                        deployments: view.deployments.clone(),
                        failed_tasks: failures.iter().map(describe_stop).collect(),
                        placement_failures: placement,
                        timed_out: Instant::now() >= deadline,
                    };
                    let v = verdict::verdict(&snapshot, deployment, task_definition, self.limits);
                    if v != Verdict::Pending {
                        return Ok((Ended::Verdict(v), failures));
                    }
                    if let Some(d) = view.deployments.iter().find(|d| d.id == deployment) {
                        let progress = format!(
                            "waiting: {} running of {} desired ({})",
                            d.running,
                            d.desired,
                            d.rollout_state
                                .as_deref()
                                .unwrap_or("rollout state unknown")
                        );
                        // Printed when it changes, not on every poll.
                        if progress != last_progress {
                            info!("{progress}");
                            last_progress = progress;
                        }
                    }
                }
                // The SDK has retried already; one failed look is not a verdict, so look again
                // until the deadline.
                Err(e) if Instant::now() < deadline => {
                    warn!("could not read the deployment's state ({e}); trying again")
                }
                Err(e) => {
                    warn!("could not read the deployment's state ({e}) and the time is up");
                    return Ok((
                        Ended::Verdict(Verdict::Failed(verdict::Failure::TimedOut)),
                        failures,
                    ));
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(jittered(self.poll)) => {}
                _ = interrupted.recv() => return Ok((Ended::Interrupted, failures)),
            }
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
        d.rollout_state.as_deref().unwrap_or("(no rollout state)"),
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

impl Watcher<'_> {
    /// One look at the service: prints new events and failed tasks, counts placement failures.
    async fn observe(
        &self,
        deployment: &str,
        seen: &mut Seen,
        failures: &mut Failures,
        placement: &mut u32,
    ) -> Result<ecs::ServiceView> {
        let view = ecs::describe_service(self.client, self.cluster, self.service).await?;
        for e in view.events.iter().rev() {
            if seen.events.insert(e.id.clone()) {
                info!("event: {}", e.message);
                if e.message.contains("unable to place a task") {
                    *placement += 1;
                }
            }
        }
        for t in ecs::stopped_tasks(self.client, self.cluster, deployment).await? {
            if !verdict::task_failed(&t.reason, &t.stop_code) {
                continue;
            }
            if seen.tasks.insert(t.arn.clone()) {
                warn!("task {} stopped: {}", short(&t.arn), describe_stop(&t));
            }
            if !failures.iter().any(|f| f.arn == t.arn) {
                failures.push(t);
            }
        }
        Ok(view)
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
