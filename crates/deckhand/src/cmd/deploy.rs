//! `deckhand deploy`: register a revision with the new image for each service, update the
//! services, watch our deployments to a verdict together, and when any fails roll every changed
//! service back to its own last good revision.

use serde::Serialize;
use tokio::time::Instant;
use tracing::{error, info, warn};

use crate::aws::types::DeploymentStatus;
use crate::aws::{self, ecs};
use crate::cli::{DeployArgs, GlobalArgs, RollbackMode};
use crate::cmd::push;
use crate::deploy::taskdef::{self, TaskDef};
use crate::deploy::verdict::{Failure, Verdict};
use crate::deploy::watch::{self, Ended, Seen, Watched, Watcher};
use crate::deploy::{history, predeploy};
use crate::error::{Error, Exit, Result};
use crate::image::reference::ImageRef;
use crate::signals::Interrupts;

/// The result object (stdout with `--output json`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct DeployResult {
    /// deployed | rolled-back | failed | dry-run | started
    pub result: String,
    /// The image reference put in the task definitions (pinned by digest when deckhand pushed it).
    pub image: String,
    /// `sha256:…` when known.
    pub digest: String,
    /// The commit the image was built from, when known.
    pub sha: String,
    /// The revision(s) registered, in service order (space-separated when several).
    pub task_definition_arn: String,
    /// The deployment(s) started, in service order (space-separated when several).
    pub deployment_id: String,
    pub rolled_back: bool,
    pub reason: String,
    /// Each service's part.
    pub services: Vec<ServiceResult>,
}

/// One service's part of a deploy.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ServiceResult {
    pub service: String,
    pub task_definition_arn: String,
    pub deployment_id: String,
    /// The revision it ran before, and goes back to on failure.
    pub rollback_target: String,
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
        let parsed = ImageRef::parse(reference).ok();
        Image {
            reference: reference.to_string(),
            sha: parsed.as_ref().and_then(|r| r.sha()).map(str::to_string),
            digest: parsed.as_ref().and_then(|r| r.digest()).map(str::to_string),
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

/// An UpdateService that failed after other services had changed.
struct StartError {
    message: String,
    /// Whether that service took the update cannot be told.
    unknown: bool,
}

/// One service being deployed.
struct Unit {
    service: String,
    /// The revision live and stable before: the rollback target.
    target: String,
    new: TaskDef,
    registered: String,
}

/// Runs the deploy; the exit code follows the README's table.
pub async fn run(global: &GlobalArgs, args: &DeployArgs) -> Result<()> {
    let services = service_list(&args.target.services)?;
    if services.len() > 1 && args.task_definition.is_some() {
        return Err(Error::usage(
            "--task-definition is one service's task definition: use it with one --service",
        ));
    }
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
    let client = ecs::Ecs::new(&config);
    info!("==> {} in {cluster}", plural("service", &services));
    // An unknown cluster or service fails here, before minutes of building.
    let found = ecs::describe_services(&client, cluster, &services).await?;
    let mut names: Vec<&str> = found.iter().map(|v| v.name.as_str()).collect();
    names.sort_unstable();
    if let Some(twice) = names.windows(2).find(|w| w[0] == w[1]) {
        return Err(Error::usage(format!(
            "the service {} is named twice (by name and by ARN)",
            twice[0]
        )));
    }

    let image = match (&push_settings, &args.image) {
        (Some(s), _) => Image::pushed(&push::run(global, s).await?),
        (None, Some(reference)) => Image::given(reference),
        (None, None) => unreachable!("clap requires --image or --repository"),
    };

    let watcher = Watcher::new(&client, cluster, &args.watch);
    // From here a signal means "stop, and leave the services safe", not "die".
    let mut interrupts = Interrupts::new();
    let befores = if args.dry_run {
        // Nothing was built in a dry run: the first look is still current.
        for v in &found {
            if let Some(d) = crate::deploy::verdict::busy(&v.deployments) {
                warn!(
                    "a deployment is in progress on {}: {}. A real run would wait for it \
                     (--wait-for-others).",
                    v.name,
                    watch::describe_deployment(d)
                );
            }
        }
        found
    } else {
        watcher
            .settled(&services, args.wait_for_others, &mut interrupts)
            .await?
    };

    let mut units = Vec::new();
    for before in &befores {
        let target = before.task_definition.clone();
        info!("{}: running {target} (the rollback target)", before.name);
        let source = match &file_source {
            Some(td) => td.clone(),
            None => taskdef::from_value(ecs::describe_task_definition(&client, &target).await?)
                .map_err(|e| {
                    Error::failed(format!(
                        "{}'s task definition cannot be reused: {e}",
                        before.name
                    ))
                })?,
        };
        for value in source.secret_values() {
            crate::redact::register(&value);
        }
        let containers = args
            .service_containers
            .iter()
            .find(|(name, _)| *name == before.name)
            .map_or(&args.containers, |(_, c)| c);
        let new = render(&before.name, &source, containers, &image)?;
        println_diff(&source.request(), &new.request());
        units.push(Unit {
            service: before.name.clone(),
            target,
            new,
            registered: String::new(),
        });
    }
    let mut result = DeployResult {
        image: image.reference.clone(),
        digest: image.digest.clone().unwrap_or_default(),
        sha: image.sha.clone().unwrap_or_default(),
        ..DeployResult::default()
    };

    if args.dry_run {
        info!("dry run: nothing registered, no service changed");
        result.result = "dry-run".into();
        return finish(global, result, Exit::Success);
    }

    // Every revision is registered before any service changes.
    info!("==> register");
    for u in &mut units {
        let registered = ecs::register_task_definition(&client, &u.new.request())
            .await
            .map_err(|e| Error::failed(format!("{e}. Nothing was changed.")))?;
        info!("{}: registered {}", u.service, registered.arn);
        u.registered = registered.arn;
    }
    if interrupts.arrived() {
        return Err(Error::failed(
            "interrupted before any service was changed; the registered revisions are not in use",
        ));
    }
    // The migration gate: every pre-deploy task must succeed before any service changes.
    let gate = predeploy::Context {
        config: &config,
        client: &client,
        cluster,
        image: &image.reference,
        sha: image.sha.as_deref(),
        placement: &befores[0].placement,
        poll: args.watch.poll,
        timeout: args.watch.timeout,
    };
    for task in &args.pre_deploy {
        let mut task = task.clone();
        if task.family.is_empty() {
            task.family = history::family_of(&units[0].target).to_string();
        }
        predeploy::run(&gate, &task, &mut interrupts).await?;
    }
    if !args.pre_deploy.is_empty() {
        // The gate can take minutes: the services must still be as they were recorded.
        let now = ecs::describe_services(&client, cluster, &services).await?;
        for (view, u) in now.iter().zip(&units) {
            let busy = crate::deploy::verdict::busy(&view.deployments);
            if busy.is_some() || !history::same_revision(&view.task_definition, &u.target) {
                return Err(Error::failed(format!(
                    "{} changed while the pre-deploy task ran (now {}{}); deckhand changed no \
                     service. Run again.",
                    u.service,
                    watch::short(&view.task_definition),
                    busy.map(|d| format!(", {}", watch::describe_deployment(d)))
                        .unwrap_or_default()
                )));
            }
        }
    }

    info!("==> deploy");
    let mut watched = Vec::new();
    let mut start_error = None;
    for u in &units {
        match watcher.start(&u.service, &u.registered).await {
            Ok(id) => {
                info!("{}: deployment {id} started", u.service);
                watched.push(Watched::new(&u.service, &id, &u.registered));
            }
            Err(e) if watched.is_empty() => return Err(e),
            Err(e) => {
                // Some services changed already: this is now a failed deploy to undo.
                error!("{}: {e}", u.service);
                // NeedsPerson: whether it took the update cannot be told.
                start_error = Some(StartError {
                    message: format!("{} could not be updated: {}", u.service, e.message),
                    unknown: e.exit == Exit::NeedsPerson,
                });
                break;
            }
        }
    }
    result.services = units
        .iter()
        .map(|u| ServiceResult {
            service: u.service.clone(),
            task_definition_arn: u.registered.clone(),
            deployment_id: watched
                .iter()
                .find(|w| w.service == u.service)
                .map(|w| w.deployment.clone())
                .unwrap_or_default(),
            rollback_target: u.target.clone(),
        })
        .collect();
    result.task_definition_arn = joined(result.services.iter().map(|s| &s.task_definition_arn));
    result.deployment_id = joined(result.services.iter().map(|s| &s.deployment_id));
    if args.no_wait && start_error.is_none() {
        result.result = "started".into();
        return finish(global, result, Exit::Success);
    }

    // From here on services have been changed: an error is no longer "nothing changed".
    let rollout = Rollout {
        global,
        args,
        watcher: &watcher,
        units: &units,
        seen: Seen::after(&befores),
    };
    let unfinished = result.clone();
    match rollout
        .follow(result, watched, start_error, &mut interrupts)
        .await
    {
        // An error with the result unprinted: services were changed, so it needs a person.
        Err(e) if e.exit == Exit::Failed => {
            report_state(&watcher, &services).await;
            let failed = DeployResult {
                result: "failed".into(),
                reason: format!(
                    "{}. Services were already changed; check them with `deckhand status`.",
                    e.message.trim_end_matches('.')
                ),
                ..unfinished
            };
            finish(global, failed, Exit::NeedsPerson)
        }
        other => other,
    }
}

/// The services named, each once.
fn service_list(names: &[String]) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for n in names.iter().filter(|n| !n.is_empty()) {
        if out.contains(n) {
            return Err(Error::usage(format!("--service {n} is named twice")));
        }
        out.push(n.clone());
    }
    if out.is_empty() {
        return Err(Error::usage("name at least one --service"));
    }
    Ok(out)
}

fn plural(word: &str, names: &[String]) -> String {
    match names {
        [one] => format!("{word} {one}"),
        many => format!("{word}s {}", many.join(", ")),
    }
}

fn joined<'a>(parts: impl Iterator<Item = &'a String>) -> String {
    parts
        .filter(|p| !p.is_empty())
        .cloned()
        .collect::<Vec<_>>()
        .join(" ")
}

/// The deploy after the first UpdateService: watch, then keep, roll back, or hand over.
struct Rollout<'a> {
    global: &'a GlobalArgs,
    args: &'a DeployArgs,
    watcher: &'a Watcher<'a>,
    units: &'a [Unit],
    /// Events already shown (or there before the deploy).
    seen: Seen,
}

impl Rollout<'_> {
    fn unit(&self, service: &str) -> &Unit {
        self.units
            .iter()
            .find(|u| u.service == service)
            .expect("every watched service is a unit")
    }

    async fn follow(
        mut self,
        mut result: DeployResult,
        mut watched: Vec<Watched>,
        start_error: Option<StartError>,
        interrupted: &mut Interrupts,
    ) -> Result<()> {
        let (global, args, watcher) = (self.global, self.args, self.watcher);
        let deadline = Instant::now() + args.watch.timeout;
        let ended = match start_error {
            None => {
                watcher
                    .watch(&mut watched, deadline, &mut self.seen, interrupted, true)
                    .await?
            }
            Some(_) => Ended::Decided,
        };
        if ended == Ended::Decided && start_error.is_none() && watched.iter().all(Watched::stable) {
            for w in &watched {
                if let Some(Verdict::Stable {
                    nothing_running: true,
                }) = w.verdict
                {
                    warn!("{}: desiredCount is 0: the deployment completed but no task ran, so nothing was verified", w.service);
                }
                info!(
                    "==> deployed: {} is stable on {}",
                    w.service,
                    watch::short(&w.task_definition)
                );
            }
            if let Some(keep) = args.keep_revisions {
                for u in self.units {
                    self.prune(keep as usize, u).await;
                }
            }
            result.result = "deployed".into();
            return finish(global, result, Exit::Success);
        }

        let unknown = start_error.as_ref().is_some_and(|e| e.unknown);
        result.reason = match (&start_error, ended) {
            (Some(e), _) => e.message.clone(),
            (None, Ended::Interrupted) => {
                warn!("interrupted while the deployment was unverified");
                explain(&Failure::Interrupted)
            }
            (None, Ended::Decided) => watched
                .iter()
                .find_map(|w| {
                    w.failed()
                        .map(|f| labelled(&w.service, &explain(f), &watched))
                })
                .unwrap_or_default(),
        };
        result.result = "failed".into();
        error!("the deployment failed: {}", result.reason);
        for w in &watched {
            for t in &w.failures {
                error!(
                    "  {}task {}: {}",
                    if watched.len() > 1 {
                        format!("{}: ", w.service)
                    } else {
                        String::new()
                    },
                    watch::short(&t.arn),
                    watch::describe_stop(t)
                );
            }
        }

        // Every changed service goes back to its own target, all or nothing.
        let mut back = Vec::new();
        let mut left = unknown;
        for w in &watched {
            let target = &self.unit(&w.service).target;
            let view =
                match ecs::describe_service(watcher.client, watcher.cluster, &w.service).await {
                    Ok(v) => v,
                    Err(e) => {
                        error!("{}: cannot be read ({e}); it is not rolled back", w.service);
                        left = true;
                        continue;
                    }
                };
            let primary = view
                .deployments
                .iter()
                .find(|d| d.status == DeploymentStatus::Primary);
            match primary {
                // ECS's breaker (or a person) is already taking it back: follow that.
                Some(p) if history::same_revision(&p.task_definition, target) => {
                    info!(
                        "{}: going back to {target} ({}); watching it",
                        w.service, p.id
                    );
                    back.push(Watched::new(&w.service, &p.id, target));
                }
                Some(p) if p.id != w.deployment => {
                    error!(
                        "{}: another deployment took over ({}); deckhand does not roll back over it",
                        w.service,
                        watch::describe_deployment(p)
                    );
                    left = true;
                }
                _ if args.rollback == RollbackMode::Never => {
                    error!("{}: --rollback never: left on the new revision", w.service);
                    left = true;
                }
                _ => {
                    info!("==> rolling back {} to {target}", w.service);
                    match watcher.start(&w.service, target).await {
                        Ok(id) => {
                            info!("{}: rollback deployment {id} started", w.service);
                            back.push(Watched::new(&w.service, &id, target));
                        }
                        Err(e) => {
                            error!("{}: the rollback could not be started: {e}", w.service);
                            left = true;
                        }
                    }
                }
            }
        }
        self.confirm(result, back, left, interrupted).await
    }

    /// Watches the rollbacks: exit 3 if every changed service is back and stable, else 4. A
    /// second signal stops the wait (CI sends SIGINT, then SIGTERM, before killing the job).
    async fn confirm(
        mut self,
        mut result: DeployResult,
        mut back: Vec<Watched>,
        left: bool,
        interrupted: &mut Interrupts,
    ) -> Result<()> {
        let deadline = Instant::now() + self.args.watch.timeout;
        let ended = if back.is_empty() {
            Ended::Decided
        } else {
            self.watcher
                .watch(&mut back, deadline, &mut self.seen, interrupted, false)
                .await?
        };
        let confirmed = ended == Ended::Decided && back.iter().all(Watched::stable);
        if confirmed && !left {
            for w in &back {
                info!(
                    "==> rolled back: {} is stable on {}",
                    w.service, w.task_definition
                );
            }
            result.result = "rolled-back".into();
            result.rolled_back = true;
            return finish(self.global, result, Exit::RolledBack);
        }
        for w in &back {
            let why = match (&w.verdict, ended) {
                (Some(Verdict::Stable { .. }), _) => continue,
                (Some(Verdict::Failed(f)), _) => explain(f),
                (_, Ended::Interrupted) => "the wait was interrupted".to_string(),
                _ => "unknown".to_string(),
            };
            error!(
                "{}: the rollback to {} ({}) was not confirmed: {why}",
                w.service, w.task_definition, w.deployment
            );
        }
        let services: Vec<String> = self.units.iter().map(|u| u.service.clone()).collect();
        report_state(self.watcher, &services).await;
        finish(self.global, result, Exit::NeedsPerson)
    }

    /// `--keep-revisions`: deregisters old revisions of a unit's family. The deploy has
    /// succeeded, so a failure here is a warning, not a failed deploy.
    async fn prune(&self, keep: usize, u: &Unit) {
        let family = u.new.family();
        info!("==> keep the newest {keep} revisions of {family}");
        let client = self.watcher.client;
        let active = match ecs::active_revisions(client, family).await {
            Ok(a) => a,
            Err(e) => {
                warn!("old revisions were not deregistered: {e}");
                return;
            }
        };
        let old = history::to_deregister(&active, keep, &[&u.registered, &u.target]);
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

/// `reason`, prefixed with the service when several were deployed.
fn labelled(service: &str, reason: &str, watched: &[Watched]) -> String {
    if watched.len() > 1 {
        format!("{service}: {reason}")
    } else {
        reason.to_string()
    }
}

/// Logs where the services stand, for a person taking over.
pub async fn report_state(watcher: &Watcher<'_>, services: &[String]) {
    match ecs::describe_services(watcher.client, watcher.cluster, services).await {
        Ok(views) => {
            for view in views {
                warn!(
                    "{} now: task definition {}, {} running of {} desired",
                    view.name,
                    watch::short(&view.task_definition),
                    view.running,
                    view.desired
                );
                for d in &view.deployments {
                    warn!("  {}", watch::describe_deployment(d));
                }
            }
        }
        Err(e) => warn!("the services' state could not be read: {e}"),
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
fn render(
    service: &str,
    source: &TaskDef,
    containers: &[String],
    image: &Image,
) -> Result<TaskDef> {
    let (new, chosen) = source
        .with_new_image(containers, &image.reference, image.sha.as_deref())
        .map_err(|e| Error::failed(format!("{service}: {e}")))?;
    info!(
        "{service}: new image for {}: {}{}",
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
    fn a_given_image_keeps_its_digest_and_sha() {
        let digest = format!("sha256:{}", "a".repeat(64));
        let i = Image::given(&format!("repo/web@{digest}"));
        assert_eq!(i.digest.as_deref(), Some(digest.as_str()));
        assert_eq!(i.sha, None);
        let i = Image::given("repo/web:latest");
        assert_eq!((i.digest, i.sha), (None, None));
        let sha = "0123456789abcdef0123456789abcdef01234567";
        let i = Image::given(&format!("127.0.0.1:5000/web:{sha}-dirty"));
        assert_eq!(i.sha.as_deref(), Some(sha));
        // Not rejected here (yet): an invalid reference goes out as given, with nothing known.
        let i = Image::given("garbage!!@@ not an image");
        assert_eq!(i.reference, "garbage!!@@ not an image");
        assert_eq!((i.digest, i.sha), (None, None));
    }
}
