//! `deckhand deploy`: register a revision with the new image, update the service, watch our
//! deployment to a verdict, and roll back to the last good revision when it fails.

use serde::Serialize;
use tokio::time::Instant;
use tracing::{error, info, warn};

use crate::aws::{self, ecs};
use crate::cli::{DeployArgs, GlobalArgs, RollbackMode};
use crate::cmd::push;
use crate::deploy::history;
use crate::deploy::taskdef::{self, TaskDef};
use crate::deploy::verdict::{Failure, Verdict};
use crate::deploy::watch::{self, Ended, Seen, Watcher};
use crate::error::{Error, Exit, Result};

/// The result object (stdout with `--output json`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct DeployResult {
    /// deployed | rolled-back | failed | dry-run | started
    pub result: String,
    /// The image reference put in the task definition (pinned by digest when deckhand pushed it).
    pub image: String,
    /// `sha256:…` when known.
    pub digest: String,
    /// The commit the image was built from, when known.
    pub sha: String,
    pub task_definition_arn: String,
    pub deployment_id: String,
    pub rolled_back: bool,
    pub reason: String,
}

/// The image going out, and what is known about it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Image {
    /// What goes into the task definition.
    reference: String,
    sha: Option<String>,
    digest: Option<String>,
}

impl Image {
    /// `--image` as given: the SHA from a `deckhand push` tag, the digest from `@sha256:…`.
    fn given(reference: &str) -> Self {
        Image {
            reference: reference.to_string(),
            sha: sha_of(reference).map(str::to_string),
            digest: reference.split_once('@').map(|(_, d)| d.to_string()),
        }
    }

    /// What the push stage produced: the digest-pinned reference.
    fn pushed(out: &crate::output::PushOutcome) -> Self {
        Image {
            reference: out.pinned.clone(),
            sha: Some(out.sha.clone()),
            digest: Some(out.digest.clone()).filter(|d| !d.is_empty()),
        }
    }
}

/// Runs the deploy; the exit code follows the README's table.
pub async fn run(global: &GlobalArgs, args: &DeployArgs) -> Result<()> {
    let [service] = args.target.services.as_slice() else {
        return Err(Error::usage(
            "deploy one --service at a time in this version",
        ));
    };
    let cluster = args.target.cluster.as_str();
    // Everything the command line alone can get wrong is checked before any call.
    let file_source = args
        .task_definition
        .as_deref()
        .map(read_task_definition)
        .transpose()?;
    let push_settings = match (&args.image, &args.repository) {
        (None, Some(repository)) => {
            let mut s =
                push::Settings::from_args(repository, &args.build, |k| std::env::var(k).ok())?;
            s.dry_run = args.dry_run;
            Some(s)
        }
        _ => None,
    };

    let config = aws::config::load(global.region.as_deref()).await?;
    let client = aws_sdk_ecs::Client::new(&config);
    info!("==> service {service} in {cluster}");
    // An unknown cluster or service fails here, before minutes of building.
    ecs::describe_service(&client, cluster, service).await?;

    let image = match (&push_settings, &args.image) {
        (Some(s), _) => Image::pushed(&push::run(global, s).await?),
        (None, Some(reference)) => Image::given(reference),
        (None, None) => unreachable!("clap requires --image or --repository"),
    };

    let watcher = Watcher::new(&client, cluster, service, &args.watch);
    // From here a signal means "stop, and leave the service safe", not "die".
    let mut interrupts = crate::signals::Interrupts::new();
    let before = if args.dry_run {
        let view = ecs::describe_service(&client, cluster, service).await?;
        if let Some(d) = crate::deploy::verdict::busy(&view.deployments) {
            warn!(
                "a deployment is in progress: {}. A real run would wait for it (--wait-for-others).",
                watch::describe_deployment(d)
            );
        }
        view
    } else {
        watcher
            .settled(args.wait_for_others, &mut interrupts)
            .await?
    };
    let target = before.task_definition.clone();
    info!("running {target} (the rollback target)");

    let source = match file_source {
        Some(td) => td,
        None => taskdef::from_value(ecs::describe_task_definition(&config, &target).await?)
            .map_err(|e| {
                Error::failed(format!(
                    "the service's task definition cannot be reused: {e}"
                ))
            })?,
    };
    for value in source.secret_values() {
        crate::redact::register(&value);
    }
    let new = render(&source, &args.containers, &image)?;
    println_diff(&source.request(), &new.request());
    let mut result = DeployResult {
        image: image.reference.clone(),
        digest: image.digest.clone().unwrap_or_default(),
        sha: image.sha.clone().unwrap_or_default(),
        ..DeployResult::default()
    };

    if args.dry_run {
        info!("dry run: nothing registered, the service is unchanged");
        result.result = "dry-run".into();
        return finish(global, result, Exit::Success);
    }

    info!("==> register {}", new.family());
    let registered = ecs::register_task_definition(&config, &new.request()).await?;
    info!("registered {}", registered.arn);
    result.task_definition_arn = registered.arn.clone();
    if interrupts.arrived() {
        return Err(Error::failed(format!(
            "interrupted before the service was changed; {} was registered but is not in use",
            registered.arn
        )));
    }
    let deployment = watcher.start(&registered.arn).await?;
    info!("==> deployment {deployment} started");
    result.deployment_id = deployment.clone();
    if args.no_wait {
        result.result = "started".into();
        return finish(global, result, Exit::Success);
    }

    // From here on the service has been changed: an error is no longer "nothing changed".
    let rollout = Rollout {
        global,
        args,
        watcher: &watcher,
        target: &target,
        before: &before,
        new_family: new.family(),
    };
    let unfinished = result.clone();
    match rollout.follow(result, &mut interrupts).await {
        // An error with the result unprinted: the service was changed, so it needs a person.
        Err(e) if e.exit == Exit::Failed => {
            report_state(&watcher).await;
            let failed = DeployResult {
                result: "failed".into(),
                reason: format!(
                    "{}. The service was already changed (deployment {deployment}); check it with \
                     `deckhand status`.",
                    e.message.trim_end_matches('.')
                ),
                ..unfinished
            };
            finish(global, failed, Exit::NeedsPerson)
        }
        other => other,
    }
}

/// The deploy after UpdateService: watch, then keep, roll back, or hand over to a person.
struct Rollout<'a> {
    global: &'a GlobalArgs,
    args: &'a DeployArgs,
    watcher: &'a Watcher<'a>,
    /// The revision that was live and stable before.
    target: &'a str,
    /// The settled service before the update (its events are not news).
    before: &'a ecs::ServiceView,
    new_family: &'a str,
}

impl Rollout<'_> {
    async fn follow(
        &self,
        mut result: DeployResult,
        interrupted: &mut crate::signals::Interrupts,
    ) -> Result<()> {
        let (global, args, watcher) = (self.global, self.args, self.watcher);
        let mut seen = Seen::after(self.before);
        let deadline = Instant::now() + args.watch.timeout;
        let (ended, failures) = watcher
            .watch(
                &result.deployment_id,
                &result.task_definition_arn,
                deadline,
                &mut seen,
                interrupted,
            )
            .await?;
        let failure = match ended {
            Ended::Verdict(Verdict::Stable { nothing_running }) => {
                if nothing_running {
                    warn!("the service's desiredCount is 0: the deployment completed but no task ran, so nothing was verified");
                }
                info!(
                    "==> deployed: {} is stable on {}",
                    result.deployment_id, result.task_definition_arn
                );
                if let Some(keep) = args.keep_revisions {
                    self.prune(keep as usize, &result.task_definition_arn).await;
                }
                result.result = "deployed".into();
                return finish(global, result, Exit::Success);
            }
            Ended::Verdict(Verdict::Failed(f)) => f,
            Ended::Verdict(Verdict::Pending) => unreachable!("watch returns only verdicts"),
            Ended::Interrupted => {
                warn!("interrupted while the deployment was unverified");
                Failure::Interrupted
            }
        };
        result.reason = explain(&failure);
        result.result = "failed".into();
        error!("the deployment failed: {}", result.reason);
        for t in &failures {
            error!(
                "  task {}: {}",
                watch::short(&t.arn),
                watch::describe_stop(t)
            );
        }

        match &failure {
            Failure::Replaced { .. } | Failure::RolledBackByEcs { .. } => {
                // Someone or something else moved the service. Only when it is going back to
                // the revision that ran before is that a rollback to confirm; otherwise it is
                // not ours to undo.
                let view =
                    ecs::describe_service(watcher.client, watcher.cluster, watcher.service).await?;
                let primary = view.deployments.iter().find(|d| d.status == "PRIMARY");
                match primary {
                    Some(p) if history::same_revision(&p.task_definition, self.target) => {
                        info!(
                            "==> the service is going back to {} ({}); watching it",
                            self.target, p.id
                        );
                        let id = p.id.clone();
                        return self
                            .confirm(&id, self.target, &mut seen, result, interrupted)
                            .await;
                    }
                    _ => {
                        error!(
                            "another deployment took over the service ({}); deckhand does not roll \
                             back over it",
                            primary.map(watch::describe_deployment).unwrap_or_default()
                        );
                        report_state(watcher).await;
                        return finish(global, result, Exit::NeedsPerson);
                    }
                }
            }
            _ => {}
        }
        if args.rollback == RollbackMode::Never {
            error!("--rollback never: the service is left on the failed revision");
            report_state(watcher).await;
            return finish(global, result, Exit::NeedsPerson);
        }
        info!("==> rolling back to {}", self.target);
        let back = watcher.start(self.target).await?;
        info!("rollback deployment {back} started");
        self.confirm(&back, self.target, &mut seen, result, interrupted)
            .await
    }

    /// Watches a rollback deployment: exit 3 if the service is back and stable, else 4. A second
    /// signal stops the wait (CI sends SIGINT, then SIGTERM, before killing the job).
    async fn confirm(
        &self,
        rollback: &str,
        target: &str,
        seen: &mut Seen,
        mut result: DeployResult,
        interrupted: &mut crate::signals::Interrupts,
    ) -> Result<()> {
        let deadline = Instant::now() + self.args.watch.timeout;
        let (ended, _) = self
            .watcher
            .watch(rollback, target, deadline, seen, interrupted)
            .await?;
        if let Ended::Verdict(Verdict::Stable { .. }) = ended {
            info!("==> rolled back: the service is stable on {target}");
            result.result = "rolled-back".into();
            result.rolled_back = true;
            return finish(self.global, result, Exit::RolledBack);
        }
        let why = match ended {
            Ended::Interrupted => "the wait was interrupted".to_string(),
            Ended::Verdict(Verdict::Failed(f)) => explain(&f),
            Ended::Verdict(_) => "unknown".to_string(),
        };
        error!("the rollback to {target} ({rollback}) was not confirmed: {why}");
        report_state(self.watcher).await;
        finish(self.global, result, Exit::NeedsPerson)
    }

    /// `--keep-revisions`: deregisters old revisions of the family. The deploy has succeeded,
    /// so a failure here is a warning, not a failed deploy.
    async fn prune(&self, keep: usize, live: &str) {
        info!(
            "==> keep the newest {keep} revisions of {}",
            self.new_family
        );
        let client = self.watcher.client;
        let active = match ecs::active_revisions(client, self.new_family).await {
            Ok(a) => a,
            Err(e) => {
                warn!("old revisions were not deregistered: {e}");
                return;
            }
        };
        let old = history::to_deregister(&active, keep, &[live, self.target]);
        if old.is_empty() {
            info!("no revision to deregister");
        }
        for arn in old {
            match ecs::deregister_task_definition(client, &arn).await {
                Ok(()) => info!("deregistered {}", watch::short(&arn)),
                Err(e) => warn!("{e}"),
            }
        }
    }
}

/// Logs where the service stands, for a person taking over.
pub async fn report_state(watcher: &Watcher<'_>) {
    match ecs::describe_service(watcher.client, watcher.cluster, watcher.service).await {
        Ok(view) => {
            warn!(
                "the service now: task definition {}, {} running of {} desired",
                watch::short(&view.task_definition),
                view.running,
                view.desired
            );
            for d in &view.deployments {
                warn!("  {}", watch::describe_deployment(d));
            }
        }
        Err(e) => warn!("the service's state could not be read: {e}"),
    }
}

fn read_task_definition(path: &std::path::Path) -> Result<TaskDef> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::usage(format!(
            "cannot read --task-definition {}: {e}",
            path.display()
        ))
    })?;
    taskdef::parse(&text).map_err(|e| Error::usage(format!("{}: {e}", path.display())))
}

/// The task definition with the new image in the chosen containers and the deckhand tag.
fn render(source: &TaskDef, containers: &[String], image: &Image) -> Result<TaskDef> {
    let repository = taskdef::image_repository(&image.reference);
    let chosen = source
        .select(containers, repository)
        .map_err(Error::failed)?;
    let mut new = source.with_image(&chosen, &image.reference);
    if let Some(sha) = &image.sha {
        new.tag("deckhand:sha", sha);
    }
    info!(
        "new image for {}: {}{}",
        chosen.join(", "),
        image.reference,
        image
            .sha
            .as_deref()
            .map(|s| format!(" (commit {s})"))
            .unwrap_or_default()
    );
    Ok(new)
}

/// The commit SHA in an image reference tagged by `deckhand push` (`repo:<40 hex>`).
pub fn sha_of(image: &str) -> Option<&str> {
    let (_, tag) = image.split('@').next()?.rsplit_once(':')?;
    let tag = tag.strip_suffix("-dirty").unwrap_or(tag);
    ((tag.len() == 40 || tag.len() == 64) && tag.chars().all(|c| c.is_ascii_hexdigit()))
        .then_some(tag)
}

fn println_diff(old: &serde_json::Value, new: &serde_json::Value) {
    let d = taskdef::diff(old, new);
    if d.is_empty() {
        info!("task definition: no change besides a new revision");
    } else {
        info!("task definition change:\n{d}");
    }
}

/// One sentence on why the deploy failed.
pub fn explain(f: &Failure) -> String {
    match f {
        Failure::RolloutFailed { reason } => format!("ECS marked the deployment FAILED ({reason})"),
        Failure::RolledBackByEcs { to } => {
            format!("ECS's circuit breaker failed the deployment and rolled back to {to}")
        }
        Failure::TasksFailing { count, last_reason } => {
            format!("{count} tasks of the new revision stopped; the last: {last_reason}")
        }
        Failure::Unplaceable { events } => {
            format!("ECS could not place the new tasks ({events} \"unable to place\" events)")
        }
        Failure::Replaced { by } => format!("another deployment ({by}) replaced ours"),
        Failure::TimedOut => "the deployment did not become stable in time".to_string(),
        Failure::Interrupted => {
            "deckhand was interrupted (SIGINT/SIGTERM) before the deployment was verified"
                .to_string()
        }
    }
}

/// Prints the result and turns the exit code into the command's outcome.
fn finish(global: &GlobalArgs, result: DeployResult, exit: Exit) -> Result<()> {
    let text = format!("{} {}", result.result, result.task_definition_arn);
    crate::output::print_result(global.output, &result, text.trim_end());
    match exit {
        Exit::Success => Ok(()),
        Exit::RolledBack => Err(Error {
            exit,
            message: format!("the deploy failed and was rolled back: {}", result.reason),
        }),
        _ => Err(Error {
            exit,
            message: format!(
                "the deploy failed and the service is not confirmed healthy: {}",
                result.reason
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sha_is_read_from_a_push_tag() {
        let sha = "0123456789abcdef0123456789abcdef01234567";
        assert_eq!(sha_of(&format!("127.0.0.1:5000/web:{sha}")), Some(sha));
        assert_eq!(
            sha_of(&format!("127.0.0.1:5000/web:{sha}-dirty")),
            Some(sha)
        );
        assert_eq!(sha_of("127.0.0.1:5000/web:latest"), None);
        assert_eq!(sha_of("web@sha256:00"), None);
    }

    #[test]
    fn a_given_image_keeps_its_digest_and_sha() {
        let i = Image::given("repo/web@sha256:abc");
        assert_eq!(i.digest.as_deref(), Some("sha256:abc"));
        assert_eq!(i.sha, None);
        let i = Image::given("repo/web:latest");
        assert_eq!((i.digest, i.sha), (None, None));
    }
}
