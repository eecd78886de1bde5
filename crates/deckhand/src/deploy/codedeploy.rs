//! CODE_DEPLOY services: their deployments are CodeDeploy's. Finds each service's deployment
//! group, starts a deployment with an AppSpec, watches it (lifecycle events, traffic, the
//! replacement task set's failed tasks), and undoes it with StopDeployment and CodeDeploy's
//! rollback, or with a deployment back to the target once ours has succeeded.

use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use super::appspec;
use super::bluegreen::{self, Judged};
use super::persist;
use super::watch::{self, Seen, Watched, Watcher};
use crate::aws::codedeploy::{self as cd, Group, Target};
use crate::aws::ecs;
use crate::error::{Error, Exit, Kind, Result};
use crate::settings::CodeDeploySettings;
use crate::signals::Interrupts;

/// Looks at a Failed or Stopped deployment that CodeDeploy is expected to roll back before it
/// is taken as not rolled back: the rollback deployment can be named a moment later.
const ROLLBACK_GRACE_LOOKS: u32 = 5;

/// How far back a CreateDeployment whose answer was lost is looked for.
const LOOKUP_WINDOW: Duration = Duration::from_secs(3600);

/// Looks at a service said to be back whose task sets do not show it yet, before it is taken
/// as not back: ECS can lag CodeDeploy by a moment.
const CONFIRM_LOOKS: u32 = 5;

/// What a CODE_DEPLOY service's deploy needs: its group, and how its AppSpec is made.
#[derive(Debug, Clone)]
pub struct Plan {
    pub group: Group,
    /// From the service: its load balancer and placement.
    pub target: appspec::Target,
    pub settings: CodeDeploySettings,
}

impl Plan {
    /// The AppSpec deploying `task_definition`: the user's file with it put in, or one built
    /// from the service with the hooks named.
    pub fn appspec(&self, task_definition: &str) -> Result<Value> {
        match &self.settings.appspec {
            Some(file) => appspec::with_task_definition(file, task_definition)
                .map_err(|e| Error::usage(format!("--appspec: {e}"))),
            None => Ok(appspec::build(
                &self.target,
                task_definition,
                &self.settings.hooks,
            )),
        }
    }
}

/// The CodeDeploy side of a deploy or rollback.
pub struct CodeDeployer<'a> {
    pub client: cd::Client,
    pub watcher: &'a Watcher<'a>,
}

/// A CodeDeploy deployment in progress, as `deckhand rollback` weighs it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InProgress {
    /// The revision it deploys.
    pub deploying: Option<String>,
    /// The revision of the original (Blue) task set.
    pub original: Option<String>,
    /// It is CodeDeploy's rollback of another deployment: waited for, not stopped.
    pub rollback: bool,
}

/// Why deckhand itself ended a deployment (CodeDeploy had not).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ours {
    TooManyFailedTasks(usize),
    TimedOut(Duration),
    Interrupted,
}

impl Ours {
    pub fn explain(&self) -> String {
        match self {
            Ours::TooManyFailedTasks(n) => {
                format!("{n} tasks of the replacement task set stopped as failures")
            }
            // The time left when the watch began: a moment under --timeout.
            Ours::TimedOut(t) => format!(
                "the CodeDeploy deployment did not succeed within the timeout ({}s)",
                t.as_secs_f64().round()
            ),
            Ours::Interrupted => "interrupted while the deployment was unverified".to_string(),
        }
    }
}

/// What [`CodeDeployer::stop`] came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// Stopped: CodeDeploy's rollback is to be followed.
    Stopping,
    /// It could not be stopped, having succeeded meanwhile.
    Succeeded,
    /// It could not be stopped.
    Refused,
}

/// Deploy, or CodeDeploy's rollback (or deckhand's deployment back) of one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Deploy,
    Rollback,
}

/// One CodeDeploy deployment under watch.
#[derive(Debug, Clone)]
pub struct Followed {
    pub service: String,
    pub group: Group,
    pub id: String,
    /// The task definition it deploys.
    pub task_definition: String,
    pub role: Role,
    pub judged: Option<Judged>,
    /// deckhand's own reason to end it, while it is not yet stopped.
    pub ours: Option<Ours>,
    /// deckhand's reason once it asked CodeDeploy to stop it.
    pub stopped_for: Option<Ours>,
    /// Someone else's deployment that replaced it.
    pub taken_over_by: Option<String>,
    /// Whether deckhand stopped it (with CodeDeploy's rollback).
    pub stopped_by_us: bool,
    /// The replacement task set's failed tasks, with their logs (its `deployment` is the task
    /// set's id, which its tasks are started by).
    pub tasks: Watched,
    last: Option<Target>,
    last_status: String,
    over_looks: u32,
}

impl Followed {
    pub fn new(service: &str, group: &Group, id: &str, task_definition: &str, role: Role) -> Self {
        Followed {
            service: service.to_string(),
            group: group.clone(),
            id: id.to_string(),
            task_definition: task_definition.to_string(),
            role,
            judged: None,
            ours: None,
            stopped_for: None,
            taken_over_by: None,
            stopped_by_us: false,
            tasks: Watched::new(service, "", task_definition),
            last: None,
            last_status: String::new(),
            over_looks: 0,
        }
    }

    /// Succeeded, or at the `--wait-until` event.
    pub fn good(&self) -> bool {
        self.ours.is_none()
            && self.taken_over_by.is_none()
            && matches!(self.judged, Some(Judged::Succeeded | Judged::Reached(_)))
    }

    /// Decided: good, over, or ended by deckhand.
    fn decided(&self) -> bool {
        self.ours.is_some()
            || self.taken_over_by.is_some()
            || matches!(
                self.judged,
                Some(Judged::Succeeded | Judged::Reached(_) | Judged::Over { .. })
            )
    }

    /// Why it failed, if it did.
    pub fn failure(&self) -> Option<String> {
        if let Some(by) = &self.taken_over_by {
            return Some(format!(
                "another CodeDeploy deployment ({by}) replaced {} in {}/{}",
                self.id, self.group.application, self.group.name
            ));
        }
        if let Some(o) = self.ours.as_ref().or(self.stopped_for.as_ref()) {
            return Some(o.explain());
        }
        match &self.judged {
            Some(Judged::Over { why, .. }) => Some(why.clone()),
            _ => None,
        }
    }

    /// CodeDeploy's rollback of it, when it started one.
    pub fn rolled_back_by(&self) -> Option<&str> {
        match &self.judged {
            Some(Judged::Over { rolled_back_by, .. }) => rolled_back_by.as_deref(),
            _ => None,
        }
    }

    /// Whether CodeDeploy ended it (failed or stopped), whoever asked.
    pub fn over(&self) -> bool {
        matches!(self.judged, Some(Judged::Over { .. }))
    }

    /// Still going (not Succeeded, Failed or Stopped).
    pub fn going(&self) -> bool {
        !matches!(self.judged, Some(Judged::Succeeded | Judged::Over { .. }))
    }

    /// deckhand asked CodeDeploy to stop it: it is watched again, until CodeDeploy names its
    /// rollback.
    fn stopped_by_deckhand(&mut self) {
        self.stopped_by_us = true;
        self.stopped_for = self.ours.take();
        self.judged = None;
        self.over_looks = 0;
    }

    fn target_id(&self, cluster: &str) -> String {
        target_id(cluster, &self.service)
    }
}

/// The id CodeDeploy gives an ECS service as a deployment's target: `cluster:service`, names.
fn target_id(cluster: &str, service: &str) -> String {
    format!("{}:{}", watch::short(cluster), watch::short(service))
}

impl<'a> CodeDeployer<'a> {
    pub fn new(config: &aws_config::SdkConfig, watcher: &'a Watcher<'a>) -> Self {
        CodeDeployer {
            client: cd::client(config),
            watcher,
        }
    }

    fn cluster(&self) -> &str {
        self.watcher.cluster
    }

    /// The deployment group of a CODE_DEPLOY service (see [`group`]).
    pub async fn group(&self, view: &ecs::ServiceView, s: &CodeDeploySettings) -> Result<Group> {
        group(&self.client, self.cluster(), view, s).await
    }

    /// The plan for a CODE_DEPLOY service, checked before anything is built or registered.
    pub async fn plan(&self, view: &ecs::ServiceView, s: &CodeDeploySettings) -> Result<Plan> {
        let group = self.group(view, s).await?;
        let target = match appspec::Target::of(view) {
            Ok(t) => t,
            // The user's own AppSpec names the load balancer itself.
            Err(_) if s.appspec.is_some() => appspec::Target::default(),
            Err(e) => return Err(Error::failed(format!("{e}; nothing was changed"))),
        };
        let routing = cd::traffic_routing(&self.client, &group.config).await;
        self.watcher.reporter.step(format!(
            "{}: CODE_DEPLOY service: CodeDeploy deployment group {}/{} ({}{})",
            view.name,
            group.application,
            group.name,
            group.config,
            routing
                .as_deref()
                .map(|r| format!(", {r}"))
                .unwrap_or_default()
        ));
        Ok(Plan {
            group,
            target,
            settings: s.clone(),
        })
    }

    /// The group's deployment in progress, if any: CodeDeploy runs one at a time.
    pub async fn busy(&self, group: &Group) -> Result<Option<String>> {
        Ok(cd::list(&self.client, group, &cd::ACTIVE)
            .await?
            .into_iter()
            .next())
    }

    /// Waits up to `wait` for the group's deployment in progress to end; exit 1 if it does not.
    pub async fn settled(
        &self,
        service: &str,
        group: &Group,
        wait: Duration,
        interrupted: &mut Interrupts,
    ) -> Result<()> {
        let deadline = Instant::now() + wait;
        let mut told = false;
        loop {
            let Some(id) = self.busy(group).await? else {
                return Ok(());
            };
            if Instant::now() >= deadline {
                return Err(Error::failed(format!(
                    "CodeDeploy deployment {id} is in progress in {}/{} ({service}); CodeDeploy \
                     runs one at a time. Run again when it has finished (or stop it with `aws \
                     deploy stop-deployment --deployment-id {id}`); nothing was changed.",
                    group.application, group.name
                )));
            }
            if !told {
                self.watcher.reporter.step(format!(
                    "{service}: waiting up to {}s for CodeDeploy deployment {id} to finish",
                    wait.as_secs_f64().round()
                ));
                told = true;
            }
            tokio::select! {
                _ = tokio::time::sleep(self.watcher.poll.min(deadline.saturating_duration_since(Instant::now()))) => {}
                _ = interrupted.recv() => return Err(Error::failed(
                    "interrupted while waiting for another deployment; nothing was changed",
                )),
            }
        }
    }

    /// CreateDeployment of `appspec`. Tried again through throttling until `deadline`; an
    /// answer that was lost is recovered by finding the deployment by its description, so a
    /// try never starts a second one.
    pub async fn start(
        &self,
        service: &str,
        group: &Group,
        appspec: &Value,
        deadline: Instant,
    ) -> Result<String> {
        let content = serde_json::to_string(appspec)
            .map_err(|e| Error::failed(format!("cannot encode the AppSpec: {e}")))?;
        let td = appspec::task_definition(appspec).unwrap_or_default();
        let description = format!(
            "deckhand: {service} to {} ({:016x})",
            watch::short(td),
            rand::random::<u64>()
        );
        let what = format!("{service}: CodeDeploy CreateDeployment");
        // Whether an earlier try may have started one whose answer was lost.
        let maybe_started = std::cell::Cell::new(false);
        let started = persist::until(self.watcher.reporter, deadline, &what, || async {
            if maybe_started.get() {
                // A try before this one may have taken: ours is then the group's deployment
                // with this description. It is looked for before any new try.
                match self.find_by_description(group, &description).await {
                    Ok(Some(id)) => return Ok(id),
                    Ok(None) => {}
                    Err(e) => return Err(e.with_kind(Kind::Transient)),
                }
            }
            match cd::create_deployment(&self.client, group, &content, &description).await {
                Ok(id) => Ok(id),
                Err(e) => {
                    if matches!(e.kind, Kind::Unreachable | Kind::Transient) {
                        maybe_started.set(true);
                    }
                    Err(e)
                }
            }
        })
        .await;
        started.map_err(|e| {
            if maybe_started.get() {
                Error {
                    exit: Exit::NeedsPerson,
                    message: format!(
                        "{e}. A CreateDeployment whose answer was lost may have started a \
                         deployment of {service}; check it with `deckhand status --cluster {} \
                         --service {service}`",
                        self.cluster()
                    ),
                    kind: e.kind,
                }
            } else {
                e
            }
        })
    }

    /// The group's recent deployment with `description` (deckhand's own, made unique).
    async fn find_by_description(
        &self,
        group: &Group,
        description: &str,
    ) -> Result<Option<String>> {
        let since = crate::clock::now() - LOOKUP_WINDOW.as_secs_f64();
        for d in cd::recent(&self.client, group, since).await? {
            if d.description == description {
                return Ok(Some(d.id));
            }
        }
        Ok(None)
    }

    /// Polls until every deployment in `followed` is decided (with `fail_fast`, until the first
    /// failure), `deadline` passes, or a signal arrives.
    pub async fn watch(
        &self,
        followed: &mut [Followed],
        deadline: Instant,
        seen: &mut Seen,
        interrupted: &mut Interrupts,
        fail_fast: bool,
    ) -> Result<watch::Ended> {
        let timeout = deadline.saturating_duration_since(Instant::now());
        let several = followed.len() > 1;
        loop {
            self.look(followed, seen, several).await?;
            let failed = followed.iter().any(|f| f.failure().is_some());
            if followed.iter().all(Followed::decided) || (fail_fast && failed) {
                return Ok(watch::Ended::Decided);
            }
            if Instant::now() >= deadline {
                for f in followed.iter_mut().filter(|f| !f.decided()) {
                    f.ours = Some(Ours::TimedOut(timeout));
                }
                return Ok(watch::Ended::Decided);
            }
            let wait = self
                .watcher
                .poll
                .min(deadline.saturating_duration_since(Instant::now()));
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = interrupted.recv() => {
                    for f in followed.iter_mut().filter(|f| !f.decided()) {
                        f.ours = Some(Ours::Interrupted);
                    }
                    return Ok(watch::Ended::Interrupted);
                }
            }
        }
    }

    /// One look at every undecided deployment: GetDeployment, its ECS target, the services
    /// (events, task sets) and the replacement task set's stopped tasks.
    async fn look(&self, followed: &mut [Followed], seen: &mut Seen, several: bool) -> Result<()> {
        let r = self.watcher.reporter;
        let names: Vec<String> = followed
            .iter()
            .filter(|f| !f.decided())
            .map(|f| f.service.clone())
            .collect();
        if names.is_empty() {
            return Ok(());
        }
        let views = match ecs::describe_services(self.watcher.client, self.cluster(), &names).await
        {
            Ok(v) => v,
            Err(e) if e.is_transient() => {
                r.warn(format!(
                    "the services could not be read ({e}); looking again"
                ));
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        for f in followed.iter_mut().filter(|f| !f.decided()) {
            let label = |line: &str| {
                super::rollout::labelled(&f.service, line, several || f.role == Role::Rollback)
            };
            let d = match cd::deployment(&self.client, &f.id).await {
                Ok(d) => d,
                Err(e) if e.is_transient() => {
                    r.warn(format!("{}: {e}; looking again", f.service));
                    continue;
                }
                Err(e) => return Err(e),
            };
            let target = match cd::target(&self.client, &f.id, &f.target_id(self.cluster())).await {
                Ok(t) => t,
                Err(e) if e.is_transient() => None,
                Err(e) => return Err(e),
            };
            let view = views.iter().find(|v| v.name == f.service);
            if d.status != f.last_status {
                let what = match f.role {
                    Role::Deploy => "CodeDeploy deployment",
                    Role::Rollback => "CodeDeploy rollback deployment",
                };
                r.step(label(&format!("{what} {} {}", f.id, d.status)));
                if d.status == "Ready" && f.role == Role::Deploy {
                    r.warn(label(&format!(
                        "waiting for traffic re-routing: `deckhand continue --cluster {} \
                         --service {}` shifts production traffic to the replacement task set \
                         (`--rollback` to go back)",
                        self.cluster(),
                        f.service
                    )));
                }
                f.last_status = d.status.clone();
            }
            if let Some(t) = &target {
                let task_sets = view.map(|v| v.task_sets.clone()).unwrap_or_default();
                let name = |id: &str| {
                    task_sets
                        .iter()
                        .find(|s| s.id == id)
                        .map(|s| watch::short(&s.task_definition).to_string())
                };
                for line in bluegreen::news(f.last.as_ref(), t, &name) {
                    r.step(label(&line));
                }
                // The replacement task set's tasks are this deployment's own only when it
                // runs the revision deployed (not in CodeDeploy's rollback of it).
                if let Some(green) = bluegreen::replacement(t) {
                    let runs_ours = task_sets.iter().any(|s| {
                        s.id == green
                            && super::history::same_revision(&s.task_definition, &f.task_definition)
                    });
                    if runs_ours {
                        f.tasks.deployment = green.to_string();
                    }
                }
            }
            if let Some(view) = view {
                let list = !f.tasks.deployment.is_empty();
                if let Err(e) = self
                    .watcher
                    .observe(&mut f.tasks, view, seen, several, list)
                    .await
                {
                    r.warn(format!("{}: {e}", f.service));
                }
            }
            let wait_until = match f.role {
                Role::Deploy => self.watcher.wait_until.as_deref(),
                Role::Rollback => None,
            };
            let judged = bluegreen::judge(&d, target.as_ref(), wait_until);
            f.last = target.or(f.last.take());
            if let Judged::Over {
                rolled_back_by: None,
                ..
            } = &judged
            {
                // CodeDeploy names its rollback deployment a moment after the failure (or
                // the stop, whoever asked for it): a few more looks before it is taken as
                // none, which also gives another's deployment time to show.
                f.over_looks += 1;
                if f.role == Role::Deploy && f.over_looks < ROLLBACK_GRACE_LOOKS {
                    continue;
                }
                // Is another deployment of the group going: CodeDeploy's rollback of ours (not
                // named on ours yet), or someone else's taking its place?
                match self.another(&f.group, &f.id).await {
                    Ok(Some((id, true))) => {
                        f.judged = Some(Judged::Over {
                            why: bluegreen::why(&d, f.last.as_ref()),
                            stopped: d.status == "Stopped",
                            rolled_back_by: Some(id),
                        });
                        continue;
                    }
                    Ok(Some((id, false))) if !f.stopped_by_us => f.taken_over_by = Some(id),
                    Ok(_) => {}
                    Err(e) => {
                        r.warn(format!("{}: {e}; looking again", f.service));
                        continue;
                    }
                }
            }
            if f.role == Role::Deploy
                && !f.stopped_by_us
                && matches!(judged, Judged::Pending | Judged::Ready)
                && f.tasks.failures.len() >= self.watcher.limits.failed_tasks
            {
                f.ours = Some(Ours::TooManyFailedTasks(f.tasks.failures.len()));
            }
            f.judged = Some(judged);
        }
        Ok(())
    }

    /// Another active deployment in `group` than `ours`: its id, and whether it is
    /// CodeDeploy's rollback of ours.
    async fn another(&self, group: &Group, ours: &str) -> Result<Option<(String, bool)>> {
        let active = cd::list(&self.client, group, &cd::ACTIVE).await?;
        let Some(id) = bluegreen::other(&active, ours) else {
            return Ok(None);
        };
        let d = cd::deployment(&self.client, id).await?;
        let rollback = d.rollback_of.as_deref() == Some(ours);
        Ok(Some((id.to_string(), rollback)))
    }

    /// Ends our deployment in progress with StopDeployment and CodeDeploy's rollback, tried
    /// until `deadline`; if it could not be stopped, whether it had succeeded meanwhile.
    pub async fn stop(&self, f: &mut Followed, deadline: Instant) -> Stop {
        let r = self.watcher.reporter;
        let what = format!("{}: CodeDeploy StopDeployment of {}", f.service, f.id);
        let stopped = persist::until(r, deadline, &what, || async {
            match cd::stop(&self.client, &f.id, true).await {
                Ok(()) => Ok(()),
                // Its answer may have been lost after it took: then the deployment says so.
                Err(e) if e.is_transient() => match cd::deployment(&self.client, &f.id).await {
                    Ok(d) if matches!(d.status.as_str(), "Stopped" | "Failed") => Ok(()),
                    _ => Err(e),
                },
                Err(e) => Err(e),
            }
        });
        match stopped.await {
            Ok(()) => {
                r.step(format!(
                    "{}: StopDeployment of {} with CodeDeploy's rollback",
                    f.service, f.id
                ));
                f.stopped_by_deckhand();
                Stop::Stopping
            }
            Err(e) => {
                // An earlier try may have taken (its answer lost), or it ended meanwhile.
                let what = format!("{}: CodeDeploy GetDeployment of {}", f.service, f.id);
                let read =
                    persist::until(r, deadline, &what, || cd::deployment(&self.client, &f.id));
                let status = read.await.map(|d| d.status).unwrap_or_default();
                if matches!(status.as_str(), "Stopped" | "Failed") {
                    r.step(format!("{}: {} is {status}", f.service, f.id));
                    f.stopped_by_deckhand();
                    return Stop::Stopping;
                }
                r.warn(format!(
                    "{}: CodeDeploy would not stop {} ({e})",
                    f.service, f.id
                ));
                if status == "Succeeded" {
                    Stop::Succeeded
                } else {
                    Stop::Refused
                }
            }
        }
    }

    /// Whether the service is confirmed on `task_definition` alone ([`on_alone`]), read
    /// through throttling until `deadline` and looked at a few times while ECS catches up.
    pub async fn confirmed_on(
        &self,
        service: &str,
        task_definition: &str,
        deadline: Instant,
    ) -> bool {
        for look in 0..CONFIRM_LOOKS {
            let what = format!("{service}: DescribeServices");
            let read = persist::until(self.watcher.reporter, deadline, &what, || {
                ecs::describe_service(self.watcher.client, self.cluster(), service)
            });
            match read.await {
                Ok(view) if on_alone(&view, task_definition) => return true,
                Ok(view) if look + 1 == CONFIRM_LOOKS => {
                    self.watcher.reporter.warn(format!(
                        "{service} is not seen on {} alone: it runs {}, task sets {}",
                        watch::short(task_definition),
                        watch::short(&view.task_definition),
                        view.task_sets
                            .iter()
                            .map(|t| format!("{} {}", t.status, watch::short(&t.task_definition)))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
                Ok(_) => {}
                Err(_) => return false,
            }
            if look + 1 < CONFIRM_LOOKS && Instant::now() < deadline {
                tokio::time::sleep(
                    self.watcher
                        .poll
                        .min(deadline.saturating_duration_since(Instant::now())),
                )
                .await;
            }
        }
        false
    }

    /// What CodeDeploy deployment `id`, in progress on the service in `view`, is doing: the
    /// revision it deploys (its AppSpec's, else its replacement task set's) and the revision of
    /// the original task set; for CodeDeploy's rollback of another deployment, those of the
    /// deployment it undoes. What cannot be read is `None`, and said.
    pub async fn in_progress(&self, id: &str, view: &ecs::ServiceView) -> InProgress {
        let Some(d) = self.read_deployment(id).await else {
            return InProgress::default();
        };
        let rollback = d.rollback_of.is_some();
        let (undone, d) = match d.rollback_of {
            Some(undone) => match self.read_deployment(&undone).await {
                Some(u) => (undone, u),
                None => {
                    return InProgress {
                        rollback,
                        ..InProgress::default()
                    }
                }
            },
            None => (id.to_string(), d),
        };
        let (green, blue) = match cd::target(
            &self.client,
            &undone,
            &target_id(self.cluster(), &view.name),
        )
        .await
        {
            Ok(Some(t)) => bluegreen::labelled_revisions(&t, view),
            _ => (None, None),
        };
        InProgress {
            deploying: d.task_definition.or(green),
            original: blue,
            rollback,
        }
    }

    /// GetDeployment of `id`; `None`, and said, when it cannot be read.
    async fn read_deployment(&self, id: &str) -> Option<cd::Deployment> {
        match cd::deployment(&self.client, id).await {
            Ok(d) => Some(d),
            Err(e) => {
                self.watcher.reporter.warn(format!(
                    "cannot read CodeDeploy deployment {id}: {}",
                    e.message
                ));
                None
            }
        }
    }

    /// The id of CodeDeploy's rollback of deployment `id`, once CodeDeploy names it.
    pub async fn rolled_back_by(&self, id: &str) -> Option<String> {
        cd::deployment(&self.client, id).await.ok()?.rolled_back_by
    }

    /// Whether the service runs `task_definition` (the PRIMARY task set's) with no other task
    /// set left: what "back on the original task set" is confirmed by.
    pub async fn on(&self, service: &str, task_definition: &str) -> Option<bool> {
        let view = ecs::describe_service(self.watcher.client, self.cluster(), service)
            .await
            .ok()?;
        Some(on_alone(&view, task_definition))
    }
}

/// Whether `view` runs `task_definition` (the PRIMARY task set's) with no other task set
/// carrying traffic: what "back on the original task set" is confirmed by (pure).
pub fn on_alone(view: &ecs::ServiceView, task_definition: &str) -> bool {
    // A DRAINING task set carries no traffic: it is on its way out.
    let primary_ok = view
        .task_sets
        .iter()
        .filter(|t| t.status != "DRAINING")
        .all(|t| {
            t.status == "PRIMARY"
                && super::history::same_revision(&t.task_definition, task_definition)
        });
    super::history::same_revision(&view.task_definition, task_definition) && primary_ok
}

/// The deployment group of a CODE_DEPLOY service: the one named (which must deploy it), or the
/// one found. Exit 1 when none or several; nothing is changed.
pub async fn group(
    client: &cd::Client,
    cluster: &str,
    view: &ecs::ServiceView,
    s: &CodeDeploySettings,
) -> Result<Group> {
    match (&s.application, &s.deployment_group) {
        (Some(app), Some(name)) => {
            let g = cd::group(client, app, name).await?;
            if !bluegreen::group_deploys(&g, cluster, &view.name) {
                return Err(Error::failed(format!(
                    "CodeDeploy deployment group {app}/{name} does not deploy service {} in \
                     cluster {cluster} (it deploys {}); nothing was changed",
                    view.name,
                    g.services
                        .iter()
                        .map(|(c, s)| format!("{s} in {c}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            Ok(g)
        }
        (app, name) => {
            let groups = cd::groups(client).await?;
            bluegreen::pick_named(
                &groups,
                app.as_deref(),
                name.as_deref(),
                cluster,
                &view.name,
            )
            .map_err(|e| Error::failed(format!("{e}; nothing was changed")))
        }
    }
}

/// A deploy with CODE_DEPLOY services (and maybe ECS ones) after its first change: watch the
/// CodeDeploy deployments, then the ECS ones; keep them all, or undo every changed service.
pub(super) struct Both<'a> {
    pub(super) cd: &'a CodeDeployer<'a>,
    pub(super) args: &'a crate::settings::DeploySettings,
    /// The ECS services' part (its units are the ECS services only), taken when it runs.
    pub(super) rollout: Option<super::rollout::Rollout<'a>>,
    /// The CODE_DEPLOY services.
    pub(super) units: &'a [super::pipeline::Unit],
    /// Events already shown of the CODE_DEPLOY services.
    pub(super) seen: Seen,
}

impl Both<'_> {
    fn unit(&self, service: &str) -> &super::pipeline::Unit {
        self.units
            .iter()
            .find(|u| u.service == service)
            .expect("every followed service is a CODE_DEPLOY unit")
    }

    fn at(&self, service: &str) -> String {
        format!("--cluster {} --service {service}", self.cd.cluster())
    }

    pub(super) async fn follow(
        mut self,
        mut result: super::pipeline::DeployResult,
        watched: Vec<Watched>,
        mut followed: Vec<Followed>,
        start_error: Option<super::pipeline::StartError>,
        interrupted: &mut Interrupts,
    ) -> Result<super::pipeline::Outcome> {
        let cd = self.cd;
        let r = cd.watcher.reporter;
        let timeout = self.args.watch.timeout;
        let deadline = Instant::now() + timeout;
        let ended = match &start_error {
            None => {
                cd.watch(&mut followed, deadline, &mut self.seen, interrupted, true)
                    .await?
            }
            Some(_) => watch::Ended::Decided,
        };
        let ecs_units = self.rollout.as_ref().map_or(0, |r| r.units.len());
        let has_ecs = ecs_units > 0;
        let cd_ok = start_error.is_none()
            && ended == watch::Ended::Decided
            && followed.len() == self.units.len()
            && followed.iter().all(Followed::good);
        if cd_ok {
            if has_ecs {
                let mut rollout = self.rollout.take().expect("the ECS part runs once");
                // One --timeout for the whole deploy: the ECS services have been rolling
                // out all along.
                rollout.deadline = Some(deadline);
                let o = rollout.follow(result, watched, None, interrupted).await?;
                result = o.result;
                if o.exit != Exit::Success {
                    // All or nothing: the CodeDeploy services go back too.
                    let mut seen = std::mem::take(&mut self.seen);
                    let undoing = self.undo(&mut result, followed).await;
                    let back = self
                        .confirm(&mut result, undoing, &mut seen, interrupted)
                        .await;
                    return Ok(self.ending(result, worse(o.exit, back)));
                }
            }
            let mut reached = false;
            for f in &followed {
                let short = watch::short(&f.task_definition).to_string();
                if let Some(Judged::Reached(event)) = &f.judged {
                    reached = true;
                    r.verdict(format!(
                        "reached {event}: {} is going to {short}; the deployment goes on in \
                         CodeDeploy",
                        f.service
                    ));
                    let action = format!(
                        "its CodeDeploy deployment {} goes on: watch it with `deckhand status {}`",
                        f.id,
                        self.at(&f.service)
                    );
                    stand(
                        &mut result,
                        &f.service,
                        &f.task_definition,
                        "reached-stage",
                        action,
                    );
                    continue;
                }
                if cd.on(&f.service, &f.task_definition).await == Some(false) {
                    r.warn(format!(
                        "{}: CodeDeploy reports {} Succeeded, but the service is not seen on \
                         {short} alone yet",
                        f.service, f.id
                    ));
                }
                r.verdict(format!("deployed: {} is stable on {short}", f.service));
                super::rollout::mark_verified(cd.watcher, &f.task_definition).await;
                stand(
                    &mut result,
                    &f.service,
                    &f.task_definition,
                    "deployed",
                    String::new(),
                );
            }
            if reached {
                result.result = "reached-stage".into();
            } else if result.result.is_empty() {
                result.result = "deployed".into();
            }
            return Ok(super::pipeline::Outcome {
                result,
                exit: Exit::Success,
            });
        }

        let several = followed.len() + ecs_units > 1;
        let reason = match (&start_error, ended) {
            (Some(e), _) => e.message.clone(),
            (None, watch::Ended::Interrupted) => {
                r.warn("interrupted while the deployment was unverified");
                Ours::Interrupted.explain()
            }
            (None, watch::Ended::Decided) => followed
                .iter()
                .find_map(|f| {
                    f.failure()
                        .map(|why| super::rollout::labelled(&f.service, &why, several))
                })
                .unwrap_or_else(|| "unknown".into()),
        };
        result.result = "failed".into();
        result.reason = reason.clone();
        if !has_ecs {
            // The ECS part says it otherwise.
            r.error(format!("the deployment failed: {reason}"));
        }
        for f in &followed {
            for t in &f.tasks.failures {
                let task = format!("task {}: {}", watch::short(&t.arn), watch::describe_stop(t));
                r.error(format!(
                    "  {}",
                    super::rollout::labelled(&f.service, &task, several)
                ));
            }
            result.failed_tasks.extend(f.tasks.failed_tasks());
        }
        // The CodeDeploy deployments are stopped first, then the ECS services rolled back and
        // confirmed, then the CodeDeploy rollbacks confirmed.
        let undoing = self.undo(&mut result, followed).await;
        let mut exit = Exit::RolledBack;
        if let Some(service) = start_error.as_ref().and_then(|e| e.unsure.as_ref()) {
            let action = format!(
                "its CodeDeploy deployment may have started: check it with `deckhand status {}`",
                self.at(service)
            );
            stand(&mut result, service, "", "unknown", action);
            exit = Exit::NeedsPerson;
        }
        if has_ecs {
            let rollout = self.rollout.take().expect("the ECS part runs once");
            let error = super::pipeline::StartError {
                message: reason.clone(),
                unsure: None,
            };
            let o = rollout
                .follow(result, watched, Some(error), interrupted)
                .await?;
            result = o.result;
            exit = worse(exit, o.exit);
        }
        let mut seen = std::mem::take(&mut self.seen);
        let back = self
            .confirm(&mut result, undoing, &mut seen, interrupted)
            .await;
        result.reason = reason;
        Ok(self.ending(result, worse(exit, back)))
    }

    /// The result once every part is known.
    fn ending(
        &self,
        mut result: super::pipeline::DeployResult,
        exit: Exit,
    ) -> super::pipeline::Outcome {
        result.rolled_back = exit == Exit::RolledBack;
        result.result = if exit == Exit::RolledBack {
            "rolled-back"
        } else {
            "failed"
        }
        .into();
        super::pipeline::Outcome { result, exit }
    }

    /// Starts undoing every CODE_DEPLOY service that was changed: follows CodeDeploy's
    /// rollback, stops ours with one, or deploys the target again once ours succeeded. What
    /// is left to watch goes to [`Both::confirm`].
    async fn undo(
        &self,
        result: &mut super::pipeline::DeployResult,
        mut followed: Vec<Followed>,
    ) -> Undoing {
        let cd = self.cd;
        let r = cd.watcher.reporter;
        let args = self.args;
        let deadline = Instant::now() + args.watch.timeout;
        let mut back = Vec::new();
        let mut left = false;
        let mut stopping = Vec::new();
        for mut f in followed.drain(..) {
            let target = self.unit(&f.service).target.clone();
            let short = watch::short(&f.task_definition).to_string();
            if let Some(by) = &f.taken_over_by {
                r.error(format!(
                    "{}: another CodeDeploy deployment took over ({by}); deckhand does not roll \
                     back over it",
                    f.service
                ));
                let action = format!(
                    "another deployment ({by}) is deploying it: check it with `deckhand status {}`",
                    self.at(&f.service)
                );
                stand(result, &f.service, "", "taken-over", action);
                left = true;
                continue;
            }
            if let Some(rb) = f.rolled_back_by() {
                back.push(self.follow_rollback(&f, rb));
                continue;
            }
            let check = format!(
                "check its task sets with `deckhand status {}`",
                self.at(&f.service)
            );
            if f.over() {
                // Ended before the replacement took traffic (CodeDeploy has nothing to roll
                // back before Install): the service may be on its original task set alone.
                if cd.confirmed_on(&f.service, &target, deadline).await {
                    self.back_without_rollback(result, &f, &target);
                    continue;
                }
                r.error(format!(
                    "{}: CodeDeploy ended {} without a rollback ({})",
                    f.service,
                    f.id,
                    f.failure().unwrap_or_default()
                ));
                let action = format!(
                    "CodeDeploy did not roll back {}: the replacement task set may still be \
                     there; {check}",
                    f.id
                );
                stand(result, &f.service, "", "not-confirmed", action);
                left = true;
                continue;
            }
            if args.rollback == crate::cli::RollbackMode::Never {
                r.error(format!(
                    "{}: --rollback never: its CodeDeploy deployment {} is left as it is",
                    f.service, f.id
                ));
                let action = format!("--rollback never left {} going; {check}", f.id);
                stand(result, &f.service, "", "on-new-revision", action);
                left = true;
                continue;
            }
            if f.going() {
                r.stage(format!(
                    "rolling back {} to {}",
                    f.service,
                    watch::short(&target)
                ));
                match cd.stop(&mut f, deadline).await {
                    Stop::Stopping => {
                        stopping.push(f);
                        continue;
                    }
                    // It ended meanwhile, succeeded: deployed back below.
                    Stop::Succeeded => {}
                    Stop::Refused => {
                        r.error(format!("{}: {} could not be stopped", f.service, f.id));
                        let action = format!("stop {} yourself; {check}", f.id);
                        stand(result, &f.service, "", "not-confirmed", action);
                        left = true;
                        continue;
                    }
                }
            }
            // Ours succeeded while another service failed: deploy the target again.
            r.stage(format!(
                "rolling back {} from {short} to {}",
                f.service,
                watch::short(&target)
            ));
            match self.redeploy(&f, &target, deadline).await {
                Some(b) => back.push(b),
                None => left = true,
            }
        }
        Undoing {
            back,
            stopping,
            left,
        }
    }

    /// Watches the undoing started by [`Both::undo`] to its end: exit 3 if every CODE_DEPLOY
    /// service is confirmed back, else 4.
    async fn confirm(
        &self,
        result: &mut super::pipeline::DeployResult,
        undoing: Undoing,
        seen: &mut Seen,
        interrupted: &mut Interrupts,
    ) -> Exit {
        let cd = self.cd;
        let r = cd.watcher.reporter;
        let Undoing {
            mut back,
            mut stopping,
            mut left,
        } = undoing;
        // The ECS services' rollback may have taken its own time: CodeDeploy's get theirs.
        let deadline = Instant::now() + self.args.watch.timeout;
        if !stopping.is_empty() {
            let _ = cd
                .watch(&mut stopping, deadline, seen, interrupted, false)
                .await;
            for f in stopping {
                let target = self.unit(&f.service).target.clone();
                match f.rolled_back_by() {
                    Some(rb) => {
                        back.push(self.follow_rollback(&f, rb));
                    }
                    None if f.judged == Some(Judged::Succeeded) => {
                        match self.redeploy(&f, &target, deadline).await {
                            Some(b) => back.push(b),
                            None => left = true,
                        }
                    }
                    None if cd.confirmed_on(&f.service, &target, deadline).await => {
                        self.back_without_rollback(result, &f, &target);
                    }
                    None => {
                        r.error(format!(
                            "{}: CodeDeploy did not roll {} back after StopDeployment",
                            f.service, f.id
                        ));
                        let action = format!(
                            "CodeDeploy did not roll back {}: check its task sets with \
                             `deckhand status {}`",
                            f.id,
                            self.at(&f.service)
                        );
                        stand(result, &f.service, "", "not-confirmed", action);
                        left = true;
                    }
                }
            }
        }
        let ended = if back.is_empty() {
            watch::Ended::Decided
        } else {
            match cd
                .watch(&mut back, deadline, seen, interrupted, false)
                .await
            {
                Ok(e) => e,
                Err(e) => {
                    r.error(format!("the rollbacks could not be watched: {e}"));
                    watch::Ended::Interrupted
                }
            }
        };
        for b in &back {
            result.failed_tasks.extend(b.tasks.failed_tasks());
            let confirmed = ended == watch::Ended::Decided
                && b.judged == Some(Judged::Succeeded)
                && cd
                    .confirmed_on(&b.service, &b.task_definition, deadline)
                    .await;
            let short = watch::short(&b.task_definition).to_string();
            if confirmed {
                r.verdict(format!("rolled back: {} is stable on {short}", b.service));
                stand(
                    result,
                    &b.service,
                    &b.task_definition,
                    "rolled-back",
                    String::new(),
                );
            } else {
                let why = b.failure().unwrap_or_else(|| "it did not succeed".into());
                r.error(format!(
                    "{}: the rollback to {short} ({}) was not confirmed: {why}",
                    b.service, b.id
                ));
                let action = format!(
                    "not confirmed on {short}: check it with `deckhand status {}`",
                    self.at(&b.service)
                );
                stand(result, &b.service, "", "not-confirmed", action);
                left = true;
            }
        }
        if left {
            Exit::NeedsPerson
        } else {
            Exit::RolledBack
        }
    }

    /// `f` ended before its replacement took traffic, and the service is confirmed on
    /// `target` alone: back, with nothing to roll back.
    fn back_without_rollback(
        &self,
        result: &mut super::pipeline::DeployResult,
        f: &Followed,
        target: &str,
    ) {
        let r = self.cd.watcher.reporter;
        r.step(format!(
            "{}: CodeDeploy ended {} before the replacement task set took traffic; the service \
             is on its original task set",
            f.service, f.id
        ));
        r.verdict(format!(
            "rolled back: {} is stable on {}",
            f.service,
            watch::short(target)
        ));
        stand(result, &f.service, target, "rolled-back", String::new());
    }

    /// CodeDeploy's rollback `rb` of `f`, to be watched back to the unit's target.
    fn follow_rollback(&self, f: &Followed, rb: &str) -> Followed {
        let target = &self.unit(&f.service).target;
        self.cd.watcher.reporter.step(format!(
            "{}: CodeDeploy is rolling it back to {} ({rb}); watching it",
            f.service,
            watch::short(target)
        ));
        Followed::new(&f.service, &f.group, rb, target, Role::Rollback)
    }

    /// A CodeDeploy deployment of `target`, after ours succeeded and must be undone.
    async fn redeploy(&self, f: &Followed, target: &str, deadline: Instant) -> Option<Followed> {
        let r = self.cd.watcher.reporter;
        let plan = self.unit(&f.service).codedeploy.as_ref()?;
        let spec = match plan.appspec(target) {
            Ok(s) => s,
            Err(e) => {
                r.error(format!("{}: {e}", f.service));
                return None;
            }
        };
        match self.cd.start(&f.service, &f.group, &spec, deadline).await {
            Ok(id) => {
                r.step(format!(
                    "{}: CodeDeploy deployment {id} back to {} started",
                    f.service,
                    watch::short(target)
                ));
                Some(Followed::new(
                    &f.service,
                    &f.group,
                    &id,
                    target,
                    Role::Rollback,
                ))
            }
            Err(e) => {
                r.error(format!(
                    "{}: the rollback could not be started before its deadline: {e}",
                    f.service
                ));
                None
            }
        }
    }
}

/// CODE_DEPLOY services being undone: rollbacks to watch, deployments deckhand stopped whose
/// rollback CodeDeploy is yet to name, and whether any is left as it is.
struct Undoing {
    back: Vec<Followed>,
    stopping: Vec<Followed>,
    left: bool,
}

/// Fills in one service's standing in the result.
fn stand(
    result: &mut super::pipeline::DeployResult,
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

/// Exit 4 is worse than 3, 3 worse than 0.
pub fn worse(a: Exit, b: Exit) -> Exit {
    let rank = |e: Exit| match e {
        Exit::Success => 0,
        Exit::RolledBack => 1,
        _ => 2,
    };
    if rank(b) > rank(a) {
        b
    } else {
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worse_exit_wins() {
        use Exit::*;
        assert_eq!(worse(Success, RolledBack), RolledBack);
        assert_eq!(worse(NeedsPerson, RolledBack), NeedsPerson);
        assert_eq!(worse(RolledBack, Success), RolledBack);
        assert_eq!(worse(Success, Success), Success);
    }

    #[test]
    fn the_target_id_is_cluster_and_service_names() {
        let g = Group::default();
        let f = Followed::new(
            "arn:aws:ecs:r:1:service/c/web",
            &g,
            "d-1",
            "td",
            Role::Deploy,
        );
        assert_eq!(f.target_id("arn:aws:ecs:r:1:cluster/c"), "c:web");
        let f = Followed::new("web", &g, "d-1", "td", Role::Deploy);
        assert_eq!(f.target_id("c"), "c:web");
    }

    #[test]
    fn a_followed_deployment_fails_by_codedeploy_by_us_or_by_another() {
        let g = Group {
            application: "a".into(),
            name: "g".into(),
            ..Group::default()
        };
        let mut f = Followed::new("web", &g, "d-1", "td", Role::Deploy);
        assert!(f.failure().is_none() && !f.decided());
        f.judged = Some(Judged::Succeeded);
        assert!(f.good() && f.decided());
        f.taken_over_by = Some("d-2".into());
        assert!(!f.good());
        assert!(f.failure().unwrap().contains("d-2"));
        let mut f = Followed::new("web", &g, "d-1", "td", Role::Deploy);
        f.ours = Some(Ours::TooManyFailedTasks(2));
        assert_eq!(
            f.failure().unwrap(),
            "2 tasks of the replacement task set stopped as failures"
        );
    }
}
