//! The deploy pipeline, its stages in order: find the services, build and push the image,
//! wait for others' deployments, render and register a revision per service, run the
//! pre-deploy gate, start the updates, watch our deployments to a verdict together, and when
//! any fails roll every changed service back to its own last good revision and confirm it.

use serde::Serialize;

use super::codedeploy::{self, CodeDeployer, Followed, Plan};
use super::rollout;
use crate::aws::{self, ecs};
use crate::deploy::taskdef::{self, TaskDef};
use crate::deploy::watch::{self, Seen, Watched, Watcher};
use crate::deploy::{history, predeploy};
use crate::error::{Error, Exit, Result};
use crate::image::publish;
use crate::image::reference::ImageRef;
use crate::report::Reporter;
use crate::settings::{DeploySettings, ImageSource};
use crate::signals::Interrupts;

/// The result object (stdout with `--output json`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct DeployResult {
    /// deployed | unverified | reached-stage | rolled-back | failed | dry-run | started
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
    /// Tasks of the new revisions (and of a rollback's) that stopped as failures, with their
    /// containers' last log lines.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failed_tasks: Vec<super::watch::FailedTask>,
}

/// One service's part of a deploy.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ServiceResult {
    pub service: String,
    pub task_definition_arn: String,
    pub deployment_id: String,
    /// The revision it ran before, and goes back to on failure.
    pub rollback_target: String,
    /// The revision it runs at the end, as last seen (empty if it could not be read).
    pub running_task_definition_arn: String,
    /// deployed | unverified | reached-stage | rolled-back | on-new-revision |
    /// not-confirmed | taken-over | unknown
    pub state: String,
    /// What a person should do about it; empty when nothing.
    pub action: String,
}

/// The image going out, and what is known about it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Image {
    /// What goes into the task definition.
    reference: String,
    sha: Option<String>,
    digest: Option<String>,
    /// Known for an image built here.
    architecture: Option<String>,
}

impl Image {
    /// `--image` as given: the SHA from a `deckhand push` tag, the digest from `@sha256:…`.
    fn given(reference: &str) -> Self {
        let parsed = ImageRef::parse(reference).ok();
        Image {
            reference: reference.to_string(),
            sha: parsed.as_ref().and_then(|r| r.sha()).map(str::to_string),
            digest: parsed.as_ref().and_then(|r| r.digest()).map(str::to_string),
            architecture: None,
        }
    }

    /// What the push stage produced: the digest-pinned reference.
    fn pushed(out: &crate::output::PushOutcome) -> Self {
        Image {
            reference: out.pinned.clone(),
            sha: Some(out.sha.clone()),
            digest: Some(out.digest.clone()).filter(|d| !d.is_empty()),
            architecture: out.architecture.clone(),
        }
    }
}

/// An UpdateService that failed after other services had changed (or whose answer was lost).
pub(super) struct StartError {
    pub(super) message: String,
    /// A CODE_DEPLOY service whose CreateDeployment may have taken, its answer lost: it is
    /// not known to be unchanged, nor followed.
    pub(super) unsure: Option<String>,
}

/// One service being deployed.
pub(super) struct Unit {
    pub(super) service: String,
    /// The revision live and stable before: the rollback target.
    pub(super) target: String,
    pub(super) new: TaskDef,
    pub(super) registered: String,
    /// How a CODE_DEPLOY service is deployed (`None`: UpdateService).
    pub(super) codedeploy: Option<Box<Plan>>,
}

/// How a deploy that got as far as changing something (or a dry run) ended.
pub type Outcome = super::Outcome<DeployResult>;

/// Everything the stages share.
struct Deploy<'a> {
    r: &'a Reporter,
    s: &'a DeploySettings,
    config: &'a aws_config::SdkConfig,
    client: &'a ecs::Ecs,
    watcher: Watcher<'a>,
    codedeploy: crate::aws::codedeploy::Client,
    services: Vec<String>,
}

/// Runs the deploy pipeline, its stages in order: preflight, build and push, settle, render,
/// register, the pre-deploy gate, start, watch, and on failure roll back and confirm. An `Err`
/// means nothing was changed (exit 1 or 2); once a service has changed, every ending is an
/// [`Outcome`], with the exit code the README's table gives it.
pub async fn deploy(r: &Reporter, s: &DeploySettings) -> Result<Outcome> {
    // Secret-looking --env values are masked from the first line on.
    for value in s.services.iter().flat_map(|u| u.changes.secret_values()) {
        crate::redact::register(&value);
    }
    let mut plain_secrets: Vec<&str> = Vec::new();
    for a in s.services.iter().flat_map(|u| &u.changes.env) {
        if crate::secrets::is_secret_name(&a.key) && !plain_secrets.contains(&a.key.as_str()) {
            plain_secrets.push(&a.key);
        }
    }
    if !plain_secrets.is_empty() {
        r.warn(format!(
            "{} set as plain environment: the value is stored in the task definition, readable \
             by anyone who can describe it. --secret-env NAME=ARN has ECS read it from Secrets \
             Manager or SSM instead",
            plain_secrets.join(", ")
        ));
    }
    for warning in &s.warnings {
        r.warn(warning.as_str());
    }
    let config = aws::config::load(s.region.as_deref()).await?;
    let client = ecs::Ecs::new(&config);
    let d = Deploy {
        r,
        s,
        config: &config,
        client: &client,
        watcher: Watcher {
            wait_until: s.wait_until.clone(),
            ..Watcher::new(r, &config, &client, &s.cluster, &s.watch)
        },
        codedeploy: crate::aws::codedeploy::client(&config),
        services: s.service_names(),
    };
    let (found, plans) = d.preflight().await?;
    let image = d.image(&found).await?;
    // From here a signal means "stop, and leave the services safe", not "die".
    let mut interrupts = Interrupts::new();
    let befores = d.settle(found, &plans, &mut interrupts).await?;
    let mut units = d.render(&befores, plans, &image).await?;
    let mut result = DeployResult {
        image: image.reference.clone(),
        digest: image.digest.clone().unwrap_or_default(),
        sha: image.sha.clone().unwrap_or_default(),
        ..DeployResult::default()
    };
    if s.dry_run {
        for u in &units {
            if let Some(plan) = &u.codedeploy {
                let spec = plan.appspec("<the new revision>")?;
                r.step(format!(
                    "{}: the AppSpec for CodeDeploy:\n{}",
                    u.service,
                    serde_json::to_string_pretty(&spec).unwrap_or_default()
                ));
            }
        }
        r.step("dry run: nothing registered, no service changed");
        result.result = "dry-run".into();
        return Ok(Outcome {
            result,
            exit: Exit::Success,
        });
    }
    d.register(&mut units, &mut interrupts).await?;
    d.gate(&units, &befores, &image, &mut interrupts).await?;
    let (watched, followed, start_error) = d.start(&units).await?;
    result.services = units
        .iter()
        .map(|u| ServiceResult {
            service: u.service.clone(),
            task_definition_arn: u.registered.clone(),
            deployment_id: watched
                .iter()
                .find(|w| w.service == u.service)
                .map(|w| w.deployment.clone())
                .or_else(|| {
                    followed
                        .iter()
                        .find(|f| f.service == u.service)
                        .map(|f| f.id.clone())
                })
                .unwrap_or_default(),
            rollback_target: u.target.clone(),
            ..ServiceResult::default()
        })
        .collect();
    result.task_definition_arn = joined(result.services.iter().map(|s| &s.task_definition_arn));
    result.deployment_id = joined(result.services.iter().map(|s| &s.deployment_id));
    if s.no_wait && start_error.is_none() {
        result.result = "started".into();
        return Ok(Outcome {
            result,
            exit: Exit::Success,
        });
    }

    // From here on services have been changed: an error is no longer "nothing changed".
    let (ecs_units, cd_units): (Vec<Unit>, Vec<Unit>) =
        units.into_iter().partition(|u| u.codedeploy.is_none());
    let rollout = rollout::Rollout {
        args: s,
        watcher: &d.watcher,
        units: &ecs_units,
        seen: Seen::after(&befores),
        deadline: None,
    };
    let unfinished = result.clone();
    let followed_up = if cd_units.is_empty() {
        rollout
            .follow(result, watched, start_error, &mut interrupts)
            .await
    } else {
        let cd = d.cd();
        let both = codedeploy::Both {
            cd: &cd,
            args: s,
            rollout: Some(rollout),
            units: &cd_units,
            seen: Seen::after(&befores),
        };
        both.follow(result, watched, followed, start_error, &mut interrupts)
            .await
    };
    match followed_up {
        Ok(outcome) => Ok(outcome),
        // An error past the first change: services were changed, so it needs a person.
        Err(e) => {
            rollout::report_state(&d.watcher, &d.services).await;
            let failed = DeployResult {
                result: "failed".into(),
                reason: format!(
                    "{}. Services were already changed; check them with `deckhand status`.",
                    e.message.trim_end_matches('.')
                ),
                ..unfinished
            };
            Ok(Outcome {
                result: failed,
                exit: Exit::NeedsPerson,
            })
        }
    }
}

impl Deploy<'_> {
    /// Every service exists, each named once: an unknown cluster or service fails here, before
    /// minutes of building.
    async fn preflight(&self) -> Result<(Vec<ecs::ServiceView>, Vec<Option<Plan>>)> {
        let cluster = &self.s.cluster;
        self.r.stage(format!(
            "{} in {cluster}",
            plural("service", &self.services)
        ));
        let found = ecs::describe_services(self.client, cluster, &self.services).await?;
        let mut names: Vec<&str> = found.iter().map(|v| v.name.as_str()).collect();
        names.sort_unstable();
        if let Some(twice) = names.windows(2).find(|w| w[0] == w[1]) {
            return Err(Error::usage(format!(
                "the service {} is named twice (by name and by ARN)",
                twice[0]
            )));
        }
        if let Some(until) = &self.s.wait_until {
            let event = super::appspec::event(until).is_some();
            if let Some(v) = found
                .iter()
                .find(|v| event != (v.controller == "CODE_DEPLOY"))
            {
                return Err(Error::usage(if event {
                    format!(
                        "--wait-until {until} is a CodeDeploy lifecycle event, but service {} \
                         uses the {} deployment controller: name one of ECS's lifecycle stages \
                         for it, or deploy it on its own",
                        v.name, v.controller
                    )
                } else {
                    format!(
                        "--wait-until {until} is an ECS lifecycle stage, but service {} is \
                         deployed through CodeDeploy: name one of CodeDeploy's lifecycle events \
                         ({}) for it, or deploy it on its own",
                        v.name,
                        super::appspec::EVENTS.join(", ")
                    )
                }));
            }
        }
        let mut plans = Vec::new();
        for view in &found {
            if let Some(why) = super::scaffold::unsupported_controller(
                &view.name,
                &view.controller,
                "nothing was changed",
            ) {
                return Err(Error::failed(why));
            }
            plans.push(match view.controller.as_str() {
                "CODE_DEPLOY" => {
                    let settings = self.s.codedeploy_for(&view.name);
                    let plan = self.cd().plan(view, settings).await?;
                    let wait = u64::try_from(plan.group.termination_wait).unwrap_or(0) * 60;
                    if wait > 0 && wait >= self.s.watch.timeout.as_secs() {
                        self.r.warn(format!(
                            "{}: deployment group {} keeps the original task set {} minutes \
                             after traffic moves, and the deployment succeeds only after that, \
                             beyond --timeout {}s: give --timeout room, or end at --wait-until \
                             AfterAllowTraffic",
                            view.name,
                            plan.group.name,
                            plan.group.termination_wait,
                            self.s.watch.timeout.as_secs()
                        ));
                    }
                    Some(plan)
                }
                _ => None,
            });
        }
        let settings: Vec<_> = found
            .iter()
            .map(|v| {
                (
                    v.name.as_str(),
                    v.controller.as_str(),
                    self.s.codedeploy_given_to(&v.name),
                )
            })
            .collect();
        if let Some(why) = crate::settings::unused_codedeploy(&settings) {
            return Err(Error::usage(why));
        }
        Ok((found, plans))
    }

    /// The CodeDeploy side, for CODE_DEPLOY services.
    fn cd(&self) -> CodeDeployer<'_> {
        CodeDeployer {
            client: self.codedeploy.clone(),
            watcher: &self.watcher,
        }
    }

    /// The image going out: built and pushed now, or the one given.
    async fn image(&self, found: &[ecs::ServiceView]) -> Result<Image> {
        Ok(match &self.s.source {
            ImageSource::Build(p) => {
                let running = self.running_images(found).await;
                let region = self.s.region.as_deref();
                Image::pushed(&publish::run_with_cache(self.r, region, p, &running).await?)
            }
            ImageSource::Given(reference) => Image::given(reference),
        })
    }

    /// The images the services run now, the build's best cache; a revision that cannot be
    /// read only means a colder build.
    async fn running_images(&self, found: &[ecs::ServiceView]) -> Vec<String> {
        let mut images = Vec::new();
        for view in found {
            let Ok(td) = ecs::describe_task_definition(self.client, &view.task_definition).await
            else {
                continue;
            };
            let body = td.get("taskDefinition").unwrap_or(&td);
            let containers = body["containerDefinitions"]
                .as_array()
                .into_iter()
                .flatten();
            for image in containers.filter_map(|c| c["image"].as_str()) {
                if !images.iter().any(|i| i == image) {
                    images.push(image.to_string());
                }
            }
        }
        images
    }

    /// Waits for other pipelines' deployments to finish; returns the services as they are
    /// then. A dry run only says what a real one would wait for.
    async fn settle(
        &self,
        found: Vec<ecs::ServiceView>,
        plans: &[Option<Plan>],
        interrupts: &mut Interrupts,
    ) -> Result<Vec<ecs::ServiceView>> {
        // CodeDeploy runs one deployment per group at a time: --take-over cannot replace one.
        for (view, plan) in found.iter().zip(plans) {
            let Some(plan) = plan else { continue };
            let cd = self.cd();
            if self.s.dry_run || self.s.take_over {
                if let Some(id) = cd.busy(&plan.group).await? {
                    let what = format!(
                        "CodeDeploy deployment {id} is in progress on {} ({}/{})",
                        view.name, plan.group.application, plan.group.name
                    );
                    if self.s.dry_run {
                        self.r.warn(format!(
                            "{what}. A real run would wait for it (--wait-for-others)."
                        ));
                    } else {
                        return Err(Error::failed(format!(
                            "{what}; --take-over cannot replace it, as CodeDeploy runs one \
                             deployment at a time. Stop it with `aws deploy stop-deployment \
                             --deployment-id {id}` or wait for it; nothing was changed."
                        )));
                    }
                }
                continue;
            }
            cd.settled(&view.name, &plan.group, self.s.wait_for_others, interrupts)
                .await?;
        }
        if self.s.take_over && !self.s.dry_run {
            let views =
                ecs::describe_services(self.client, &self.s.cluster, &self.services).await?;
            for v in &views {
                if let Some(d) = crate::deploy::verdict::busy(&v.deployments) {
                    self.r.warn(format!(
                        "--take-over: {}'s deployment in progress is replaced: {}",
                        v.name,
                        watch::describe_deployment(d)
                    ));
                }
            }
            return Ok(views);
        }
        if !self.s.dry_run {
            return self
                .watcher
                .settled(&self.services, self.s.wait_for_others, interrupts)
                .await;
        }
        // Nothing was built in a dry run: the first look is still current.
        for v in &found {
            if let Some(d) = crate::deploy::verdict::busy(&v.deployments) {
                self.r.warn(format!(
                    "a deployment is in progress on {}: {}. A real run would wait for it \
                     (--wait-for-others).",
                    v.name,
                    watch::describe_deployment(d)
                ));
            }
        }
        Ok(found)
    }

    /// Each service's new revision, and what it changes, from its live task definition (or
    /// the --task-definition file).
    async fn render(
        &self,
        befores: &[ecs::ServiceView],
        plans: Vec<Option<Plan>>,
        image: &Image,
    ) -> Result<Vec<Unit>> {
        let r = self.r;
        let mut units = Vec::new();
        let mut rendered = Vec::new();
        for (before, plan) in befores.iter().zip(plans) {
            let target = super::decide::rollback_target(before).to_string();
            if history::same_revision(&target, &before.task_definition) {
                r.step(format!(
                    "{}: running {target} (the rollback target)",
                    before.name
                ));
            } else {
                r.step(format!(
                    "{}: rolling out {}; the rollback target is {target}, the revision it replaces",
                    before.name,
                    watch::short(&before.task_definition)
                ));
            }
            let live = || async {
                let value = ecs::describe_task_definition(self.client, &target).await?;
                taskdef::from_value(value).map_err(|e| {
                    Error::failed(format!(
                        "{}'s task definition cannot be reused: {e}",
                        before.name
                    ))
                })
            };
            // The change shown is always live → new, whatever the new revision is made from;
            // where the live revision cannot be read, none is shown rather than a made-up one.
            let (source, base) = match &self.s.task_definition {
                Some(td) => match live().await {
                    Ok(base) => (td.clone(), Some(base)),
                    Err(e) => {
                        r.warn(format!(
                            "{e}; the change from the live revision cannot be shown, and the \
                             --task-definition file is registered as it is (with the new image)"
                        ));
                        (td.clone(), None)
                    }
                },
                None => {
                    let base = live().await?;
                    (base.clone(), Some(base))
                }
            };
            source.register_secrets();
            if let Some(base) = &base {
                base.register_secrets();
            }
            let containers = self.s.containers_for(&before.name);
            let changes = self.s.changes_for(&before.name);
            let region = self.config.region().map(|r| r.as_ref().to_string());
            let (mut new, missing) = render(
                r,
                &before.name,
                &source,
                containers,
                image,
                (changes, region.as_deref()),
            )?;
            new.register_secrets();
            // What `deckhand rollback` goes back to from this revision, on any runner.
            new.tag(history::PREVIOUS_TAG, &target);
            // A new revision is verified only once it is seen stable, never by inheritance.
            new.untag(history::VERIFIED_TAG);
            // Deployed, it is no one-off task's revision, whatever it was made from.
            new.untag(history::ONE_OFF_TAG);
            rendered.push((base, missing));
            units.push(Unit {
                service: before.name.clone(),
                target,
                new,
                registered: String::new(),
                codedeploy: plan.map(Box::new),
            });
        }
        // A CONTAINER: prefix that no service's task definition has is a typo: exit 2, before
        // anything is registered.
        let named: Vec<(&str, &TaskDef, &[String])> = units
            .iter()
            .zip(&rendered)
            .map(|(u, (_, missing))| (u.service.as_str(), &u.new, missing.as_slice()))
            .collect();
        if let Some(e) = super::render::unknown(&named) {
            return Err(Error::usage(e));
        }
        for (u, (base, _)) in units.iter().zip(&rendered) {
            if let Some(base) = base {
                println_diff(r, &base.request(), &u.new.request());
            }
        }
        Ok(units)
    }

    /// Every revision is registered before any service changes.
    async fn register(&self, units: &mut [Unit], interrupts: &mut Interrupts) -> Result<()> {
        self.r.stage("register");
        for u in units.iter_mut() {
            let registered = ecs::register_task_definition(self.client, &u.new.request())
                .await
                .map_err(|e| Error::failed(format!("{e}. Nothing was changed.")))?;
            self.r
                .step(format!("{}: registered {}", u.service, registered.arn));
            u.registered = registered.arn;
        }
        if interrupts.arrived() {
            return Err(Error::failed(
                "interrupted before any service was changed; the registered revisions are not in use",
            ));
        }
        Ok(())
    }

    /// The migration gate: every pre-deploy task must succeed before any service changes, and
    /// the services must still be as they were when the deploy began.
    async fn gate(
        &self,
        units: &[Unit],
        befores: &[ecs::ServiceView],
        image: &Image,
        interrupts: &mut Interrupts,
    ) -> Result<()> {
        let s = self.s;
        if s.pre_deploy.is_empty() {
            return Ok(());
        }
        let region = self.config.region().map(|r| r.as_ref().to_string());
        let gate = predeploy::Context {
            reporter: self.r,
            config: self.config,
            client: self.client,
            cluster: &s.cluster,
            image: &image.reference,
            sha: image.sha.as_deref(),
            changes: s.changes_for(&units[0].service),
            region: region.as_deref(),
            placement: &befores[0].placement,
            poll: s.watch.poll,
            timeout: s.watch.timeout,
            log_lines: s.watch.log_lines,
        };
        for task in &s.pre_deploy {
            let mut task = task.clone();
            if task.family.is_empty() {
                task.family = history::family_of(&units[0].target).to_string();
            }
            predeploy::run(&gate, &task, interrupts).await?;
        }
        // The gate can take minutes: the services must still be as they were recorded.
        let now = ecs::describe_services(self.client, &s.cluster, &self.services).await?;
        for ((view, u), before) in now.iter().zip(units).zip(befores) {
            let busy = crate::deploy::verdict::busy(&view.deployments)
                .filter(|d| !s.take_over || !same_primary(d, before));
            if busy.is_some()
                || !history::same_revision(&view.task_definition, &before.task_definition)
            {
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
        Ok(())
    }

    /// Starts the updates in order, each tried again through throttling until the deadline.
    /// If the first fails for good nothing changed (`Err`); once one has changed, a failure is
    /// a deploy to undo. A service whose UpdateService answer was lost is watched with no
    /// deployment id: the undo stage finds out what it runs.
    async fn start(
        &self,
        units: &[Unit],
    ) -> Result<(Vec<Watched>, Vec<Followed>, Option<StartError>)> {
        self.r.stage("deploy");
        let deadline = tokio::time::Instant::now() + self.s.watch.timeout;
        let mut watched = Vec::new();
        let mut followed: Vec<Followed> = Vec::new();
        for u in units {
            if let Some(plan) = &u.codedeploy {
                let spec = plan.appspec(&u.registered)?;
                match self
                    .cd()
                    .start(&u.service, &plan.group, &spec, deadline)
                    .await
                {
                    Ok(id) => {
                        self.r.step(format!(
                            "{}: CodeDeploy deployment {id} started in {}/{}",
                            u.service, plan.group.application, plan.group.name
                        ));
                        followed.push(Followed::new(
                            &u.service,
                            &plan.group,
                            &id,
                            &u.registered,
                            codedeploy::Role::Deploy,
                        ));
                    }
                    Err(e)
                        if watched.is_empty()
                            && followed.is_empty()
                            && e.exit != Exit::NeedsPerson =>
                    {
                        return Err(e)
                    }
                    Err(e) => {
                        self.r.error(format!("{}: {e}", u.service));
                        let error = StartError {
                            message: format!("{} could not be deployed: {}", u.service, e.message),
                            unsure: (e.exit == Exit::NeedsPerson).then(|| u.service.clone()),
                        };
                        return Ok((watched, followed, Some(error)));
                    }
                }
                continue;
            }
            match self
                .watcher
                .start_until(&u.service, &u.registered, deadline)
                .await
            {
                Ok(id) => {
                    self.r
                        .step(format!("{}: deployment {id} started", u.service));
                    watched.push(Watched::new(&u.service, &id, &u.registered));
                }
                Err(e)
                    if watched.is_empty() && followed.is_empty() && e.exit != Exit::NeedsPerson =>
                {
                    return Err(e)
                }
                Err(e) => {
                    // Some services changed already (or this one may have): a deploy to undo.
                    self.r.error(format!("{}: {e}", u.service));
                    if e.exit == Exit::NeedsPerson {
                        watched.push(Watched::new(&u.service, "", &u.registered));
                    }
                    let error = StartError {
                        message: format!("{} could not be updated: {}", u.service, e.message),
                        unsure: None,
                    };
                    return Ok((watched, followed, Some(error)));
                }
            }
        }
        Ok((watched, followed, None))
    }
}

/// Whether `d` is the PRIMARY deployment `before` already had (the one `--take-over` replaces).
fn same_primary(d: &crate::deploy::verdict::DeploymentView, before: &ecs::ServiceView) -> bool {
    before.deployments.iter().any(|b| b.id == d.id)
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

/// The task definition with the new image in the chosen containers, the deploy's changes
/// (with the region for a container that gets awslogs) and the deckhand tag; also the
/// `CONTAINER:` names it does not have. A change that cannot be made is a usage error.
fn render(
    r: &Reporter,
    service: &str,
    source: &TaskDef,
    containers: &[String],
    image: &Image,
    (changes, region): (&super::render::Changes, Option<&str>),
) -> Result<(TaskDef, Vec<String>)> {
    let (new, chosen) = source
        .with_new_image(containers, &image.reference, image.sha.as_deref())
        .map_err(|e| Error::failed(format!("{service}: {e}")))?;
    let super::render::Rendered { td: new, missing } =
        super::render::apply(&new, &chosen, changes, region)
            .map_err(|e| Error::usage(format!("{service}: {e}")))?;
    r.step(format!(
        "{service}: new image for {}: {}{}",
        chosen.join(", "),
        image.reference,
        image
            .sha
            .as_deref()
            .map(|s| format!(" (commit {s})"))
            .unwrap_or_default()
    ));
    if let Some(warning) = image
        .architecture
        .as_deref()
        .and_then(|arch| new.architecture_mismatch(arch))
    {
        r.warn(format!("{service}: {warning}"));
    }
    Ok((new, missing))
}

fn println_diff(r: &Reporter, old: &serde_json::Value, new: &serde_json::Value) {
    let d = taskdef::diff(&without_history(old), &without_history(new));
    if d.is_empty() {
        r.step("task definition: no change besides a new revision");
    } else {
        r.step(format!("task definition change:\n{d}"));
    }
}

/// A request without the history tags deckhand keeps on each revision: the change a person
/// reviews is theirs.
fn without_history(request: &serde_json::Value) -> serde_json::Value {
    let mut request = request.clone();
    if let Some(tags) = request.get_mut("tags").and_then(|t| t.as_array_mut()) {
        tags.retain(|t| {
            let key = t["key"].as_str().unwrap_or_default();
            key != history::PREVIOUS_TAG && key != history::VERIFIED_TAG
        });
        if tags.is_empty() {
            request.as_object_mut().map(|o| o.remove("tags"));
        }
    }
    request
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_change_shown_leaves_out_deckhands_history_tags() {
        let request = serde_json::json!({"family": "web", "tags": [
            {"key": history::PREVIOUS_TAG, "value": "web:1"},
            {"key": history::VERIFIED_TAG, "value": "1"},
            {"key": "team", "value": "core"}]});
        assert_eq!(
            without_history(&request),
            serde_json::json!({"family": "web", "tags": [{"key": "team", "value": "core"}]})
        );
        let only_ours = serde_json::json!({"family": "web", "tags": [
            {"key": history::PREVIOUS_TAG, "value": "web:1"}]});
        assert_eq!(
            without_history(&only_ours),
            serde_json::json!({"family": "web"})
        );
    }

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
        // Settings refuse such an --image; should one get here, it goes out as given, with
        // nothing known about it.
        let i = Image::given("garbage!!@@ not an image");
        assert_eq!(i.reference, "garbage!!@@ not an image");
        assert_eq!((i.digest, i.sha), (None, None));
    }
}
