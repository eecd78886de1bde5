//! The sandbox's hands: on every tick it starts, watches and stops real containers on the
//! Docker engine for each task, then lets the scheduler move each service along.

use std::collections::HashMap;
use std::time::Duration;

use bollard::models::{ContainerCreateBody, HealthConfig, HealthStatusEnum, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptionsBuilder, RemoveContainerOptionsBuilder,
};
use bollard::Docker;
use futures_util::StreamExt;

use super::ecs;
use super::model::{ContainerDef, Rollout, State, Task, Time};
use super::progress;
use super::scheduler::{self, Action};
use super::{Options, Shared};

/// Stopped tasks kept per cluster for DescribeTasks, oldest dropped first.
const STOPPED_KEPT: usize = 500;

/// Runs ticks until the process ends; a tick also runs as soon as an API call changed state.
pub async fn run(shared: std::sync::Arc<Shared>, docker: Docker) {
    loop {
        tick(&shared, &docker).await;
        let _ = tokio::time::timeout(shared.options.tick, shared.wake.notified()).await;
    }
}

/// Containers to stop gracefully, with the grace period: (cluster, task id, docker ids, secs).
type StopWork = Vec<(String, String, Vec<String>, i32)>;

/// One pass over every task and service. Pulls and graceful stops run without holding the
/// state (a pull from the sandbox's own registry needs the state to answer, and a stop may wait
/// out its grace period); starting, observing and scheduling run under it.
pub async fn tick(shared: &Shared, docker: &Docker) {
    let (wanted, stops) = {
        let mut state = shared.state.lock().await;
        let wanted = images_to_start(&mut state);
        (wanted, stops_to_make(&mut state, shared.options.time_scale))
    };
    let mut pulled = HashMap::new();
    for image in wanted {
        let result = ensure_image(shared, docker, &image).await;
        pulled.insert(image, result);
    }
    let stopped = futures_util::future::join_all(stops.into_iter().map(
        |(cluster, task, ids, grace)| async move {
            let mut codes = Vec::new();
            for id in ids {
                let (code, lines) = stop_and_remove(docker, &id, grace).await;
                codes.push((id.clone(), code, lines));
            }
            (cluster, task, codes)
        },
    ))
    .await;

    let mut state = shared.state.lock().await;
    let now = super::now();
    for (cluster, task, mut codes) in stopped {
        if let Some(t) = state
            .clusters
            .get_mut(&cluster)
            .and_then(|c| c.tasks.get_mut(&task))
        {
            for c in t.containers.iter_mut() {
                if let Some((_, code, lines)) = codes
                    .iter_mut()
                    .find(|(id, _, _)| c.docker_id.as_ref() == Some(id))
                {
                    c.exit_code = c.exit_code.or(*code);
                    t.logs.insert(c.name.clone(), std::mem::take(lines));
                }
            }
            finish(t, now, None, Some("ServiceSchedulerInitiated"));
            t.failure_counted = true; // a requested stop is not a failure
        }
    }
    let clusters: Vec<String> = state.clusters.keys().cloned().collect();
    for cluster in clusters {
        let ids: Vec<String> = state.clusters[&cluster]
            .tasks
            .values()
            .filter(|t| t.is_live())
            .map(|t| t.id.clone())
            .collect();
        for id in ids {
            progress_task(shared, docker, &mut state, &cluster, &id, &pulled).await;
        }
        reconcile_services(&shared.options, &mut state, &cluster);
        prune_stopped(&mut state, &cluster);
    }
    super::bluegreen::step(&shared.options, &mut state, now);
}

/// Moves new tasks to PENDING and returns the images they need (each once).
pub fn images_to_start(state: &mut State) -> Vec<String> {
    let mut images = Vec::new();
    for t in state
        .clusters
        .values_mut()
        .flat_map(|c| c.tasks.values_mut())
    {
        if t.desired_status == "STOPPED" {
            continue;
        }
        if t.last_status == "PROVISIONING" {
            t.last_status = "PENDING".into();
        }
        if t.last_status == "PENDING" {
            images.extend(t.containers.iter().map(|c| c.image.clone()));
        }
    }
    images.sort();
    images.dedup();
    images
}

/// Tasks asked to stop: marked DEACTIVATING, their containers listed for a graceful stop.
fn stops_to_make(state: &mut State, time_scale: f64) -> StopWork {
    let mut work = Vec::new();
    for c in state.clusters.values_mut() {
        for t in c.tasks.values_mut() {
            if t.desired_status != "STOPPED" || !t.is_live() || t.last_status == "DEACTIVATING" {
                continue;
            }
            let ids: Vec<String> = t
                .containers
                .iter()
                .filter_map(|c| c.docker_id.clone())
                .collect();
            t.last_status = "DEACTIVATING".into();
            // ECS's default stopTimeout is 30 s; scaled like the other timings, at least 1 s.
            let grace = ((t.stop_timeout as f64) * time_scale).ceil().max(1.0) as i32;
            work.push((c.name.clone(), t.id.clone(), ids, grace));
        }
    }
    work
}

/// The most output lines kept per container.
const LOG_LINES: usize = 1000;

/// SIGTERM, up to `grace` seconds, then SIGKILL; returns the exit code and the container's last
/// output lines, and removes the container.
async fn stop_and_remove(docker: &Docker, id: &str, grace: i32) -> (Option<i64>, Vec<String>) {
    let options = bollard::query_parameters::StopContainerOptionsBuilder::default()
        .t(grace)
        .build();
    let _ = docker.stop_container(id, Some(options)).await;
    let code = docker
        .inspect_container(
            id,
            None::<bollard::query_parameters::InspectContainerOptions>,
        )
        .await
        .ok()
        .and_then(|i| i.state)
        .and_then(|s| s.exit_code);
    let lines = output_of(docker, id).await;
    let remove = RemoveContainerOptionsBuilder::default().force(true).build();
    let _ = docker.remove_container(id, Some(remove)).await;
    (code, lines)
}

/// How often a running task's output is copied for GetLogEvents: awslogs delivers lines
/// within seconds of their writing, and a client following a one-off task reads them then.
const LOG_COPY_EVERY: f64 = 1.0;

/// Copies the output of a running task's containers into `logs`, at most every
/// [`LOG_COPY_EVERY`] seconds, so GetLogEvents serves it before the task stops.
async fn copy_output(docker: &Docker, task: &mut Task, now: Time) {
    if task
        .logs_read_at
        .is_some_and(|at| now - at < LOG_COPY_EVERY)
    {
        return;
    }
    task.logs_read_at = Some(now);
    for c in &task.containers {
        if let Some(id) = &c.docker_id {
            task.logs
                .insert(c.name.clone(), output_of(docker, id).await);
        }
    }
}

/// A container's stdout and stderr, line by line (the last [`LOG_LINES`]).
async fn output_of(docker: &Docker, id: &str) -> Vec<String> {
    use futures_util::StreamExt;
    let options = bollard::query_parameters::LogsOptionsBuilder::default()
        .stdout(true)
        .stderr(true)
        .tail(&LOG_LINES.to_string())
        .build();
    let mut text = String::new();
    let mut stream = docker.logs(id, Some(options));
    while let Some(Ok(chunk)) = stream.next().await {
        text.push_str(&String::from_utf8_lossy(&chunk.into_bytes()));
    }
    text.lines().map(str::to_string).collect()
}

/// Names the sandbox's containers so that several sandboxes can share one engine.
fn container_name(instance: &str, task: &Task, container: &str) -> String {
    format!("deckhand-sandbox-{instance}-{}-{container}", &task.id[..12])
}

async fn progress_task(
    shared: &Shared,
    docker: &Docker,
    state: &mut State,
    cluster: &str,
    id: &str,
    pulled: &HashMap<String, Result<(), String>>,
) {
    let now = super::now();
    let Some(task) = state
        .clusters
        .get_mut(cluster)
        .and_then(|c| c.tasks.get_mut(id))
    else {
        return;
    };
    if task.desired_status == "STOPPED" {
        // Stopped gracefully, outside the lock, on the next tick.
        return;
    }
    if task.last_status == "PENDING" {
        let mut defs = state
            .task_definition(&task_td(state, cluster, id))
            .map(|d| d.containers())
            .unwrap_or_default();
        let task = state
            .clusters
            .get_mut(cluster)
            .and_then(|c| c.tasks.get_mut(id))
            .expect("present");
        for d in defs.iter_mut() {
            if let Some(command) = task.command_overrides.get(&d.name) {
                d.command = command.clone();
            }
            // An override replaces a variable of the same name, else adds one, as in ECS.
            for (k, v) in task
                .environment_overrides
                .get(&d.name)
                .into_iter()
                .flatten()
            {
                d.environment.retain(|(name, _)| name != k);
                d.environment.push((k.clone(), v.clone()));
            }
        }
        start_task(shared, docker, task, &defs, pulled, now).await;
        return;
    }
    observe_task(docker, task, now).await;
}

fn task_td(state: &State, cluster: &str, id: &str) -> String {
    state.clusters[cluster].tasks[id].task_definition.clone()
}

/// Marks a task stopped (once) with a reason and stop code, unless already set.
fn finish(task: &mut Task, now: Time, reason: Option<String>, code: Option<&str>) {
    if !task.is_live() {
        return;
    }
    task.last_status = "STOPPED".into();
    task.desired_status = "STOPPED".into();
    task.stopped_at = Some(now);
    if task.stopped_reason.is_none() {
        task.stopped_reason = reason;
    }
    if task.stop_code.is_none() {
        task.stop_code = code.map(str::to_string);
    }
    for c in task.containers.iter_mut() {
        c.last_status = "STOPPED".into();
    }
}

async fn start_task(
    shared: &Shared,
    docker: &Docker,
    task: &mut Task,
    defs: &[ContainerDef],
    pulled: &HashMap<String, Result<(), String>>,
    now: Time,
) {
    // A task created since the pulls began waits for the next tick.
    if defs.iter().any(|d| !pulled.contains_key(&d.image)) {
        return;
    }
    task.last_status = "PENDING".into();
    for def in defs {
        if let Some(Err(reason)) = pulled.get(&def.image) {
            let reason = reason.clone();
            if let Some(c) = task.containers.iter_mut().find(|c| c.name == def.name) {
                c.reason = Some(reason.clone());
            }
            stop_containers(docker, task).await;
            finish(task, now, Some(reason), Some("TaskFailedToStart"));
            return;
        }
        let name = container_name(&shared.instance, task, &def.name);
        let body = container_body(&shared.options, &shared.instance, task, def);
        let options = CreateContainerOptionsBuilder::default().name(&name).build();
        let started = match docker.create_container(Some(options), body).await {
            Ok(created) => {
                let id = created.id;
                if let Some(c) = task.containers.iter_mut().find(|c| c.name == def.name) {
                    c.docker_id = Some(id.clone());
                }
                docker
                    .start_container(
                        &id,
                        None::<bollard::query_parameters::StartContainerOptions>,
                    )
                    .await
            }
            Err(e) => Err(e),
        };
        if let Err(e) = started {
            let reason = format!("CannotStartContainerError: {e}");
            stop_containers(docker, task).await;
            finish(task, now, Some(reason), Some("TaskFailedToStart"));
            return;
        }
        if let Some(c) = task.containers.iter_mut().find(|c| c.name == def.name) {
            c.last_status = "RUNNING".into();
        }
    }
    task.last_status = "RUNNING".into();
    // When the containers had started (not when this tick began): stability counts from here.
    task.started_at = Some(super::now());
}

/// Makes sure the engine has `image`: pulls it only from loopback registries (its own with its
/// ECR login), so the sandbox never reaches outside the machine.
async fn ensure_image(shared: &Shared, docker: &Docker, image: &str) -> Result<(), String> {
    if docker.inspect_image(image).await.is_ok() {
        return Ok(());
    }
    let fail = |detail: String| {
        format!("CannotPullContainerError: pull image manifest for {image}: {detail}")
    };
    if !is_loopback_reference(image) {
        return Err(fail(
            "not found in the local engine, and the sandbox pulls only from loopback registries"
                .into(),
        ));
    }
    let options = CreateImageOptionsBuilder::default()
        .from_image(image)
        .build();
    let login =
        image
            .starts_with(&format!("{}/", shared.host))
            .then(|| bollard::auth::DockerCredentials {
                username: Some("AWS".into()),
                password: Some(shared.password.clone()),
                serveraddress: Some(shared.host.clone()),
                ..Default::default()
            });
    let mut pull = docker.create_image(Some(options), None, login);
    while let Some(item) = pull.next().await {
        if let Err(e) = item {
            return Err(fail(e.to_string()));
        }
    }
    Ok(())
}

/// True for `127.x.x.x[:port]/…` and `localhost[:port]/…` references.
pub fn is_loopback_reference(image: &str) -> bool {
    let Some((host, _)) = image.split_once('/') else {
        return false;
    };
    let name = host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host);
    name == "localhost" || name.starts_with("127.") || name == "[::1]"
}

fn container_body(
    options: &Options,
    instance: &str,
    task: &Task,
    def: &ContainerDef,
) -> ContainerCreateBody {
    let scale = |secs: u64| (secs as f64 * options.time_scale * 1e9).max(1e6) as i64;
    ContainerCreateBody {
        image: Some(def.image.clone()),
        cmd: (!def.command.is_empty()).then(|| def.command.clone()),
        entrypoint: (!def.entry_point.is_empty()).then(|| def.entry_point.clone()),
        env: Some(
            def.environment
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect(),
        ),
        labels: Some(HashMap::from([
            ("deckhand.sandbox".to_string(), instance.to_string()),
            ("deckhand.task".to_string(), task.arn.clone()),
            ("deckhand.container".to_string(), def.name.clone()),
        ])),
        healthcheck: def.health_check.as_ref().map(|h| HealthConfig {
            test: Some(h.command.clone()),
            interval: Some(scale(h.interval)),
            timeout: Some(scale(h.timeout)),
            retries: Some(h.retries as i64),
            start_period: Some(scale(h.start_period)),
            start_interval: None,
        }),
        host_config: Some(HostConfig {
            network_mode: Some("none".into()),
            memory: def.memory.map(mib_to_bytes),
            memory_reservation: def.memory_reservation.map(mib_to_bytes),
            ..Default::default()
        }),
        ..Default::default()
    }
}

async fn observe_task(docker: &Docker, task: &mut Task, now: Time) {
    // Running at every container this look finds running: at least from when it began.
    let look = super::now();
    let mut essential_exit = None;
    let mut any_unhealthy = false;
    let mut all_checked_healthy = true;
    for c in task.containers.iter_mut() {
        let Some(id) = &c.docker_id else { continue };
        let Ok(info) = docker
            .inspect_container(
                id,
                None::<bollard::query_parameters::InspectContainerOptions>,
            )
            .await
        else {
            if c.essential {
                essential_exit.get_or_insert((c.name.clone(), -1));
            }
            continue;
        };
        let st = info.state.unwrap_or_default();
        if st.running == Some(false) {
            c.last_status = "STOPPED".into();
            c.exit_code = st.exit_code;
            if st.oom_killed == Some(true) {
                c.reason = Some("OutOfMemoryError: Container killed due to memory usage".into());
            }
            if c.essential {
                essential_exit.get_or_insert((c.name.clone(), st.exit_code.unwrap_or(-1)));
            }
            continue;
        }
        match st.health.and_then(|h| h.status) {
            Some(HealthStatusEnum::HEALTHY) => c.health = Some("HEALTHY".into()),
            Some(HealthStatusEnum::UNHEALTHY) => {
                c.health = Some("UNHEALTHY".into());
                if c.essential {
                    any_unhealthy = true;
                }
            }
            Some(HealthStatusEnum::STARTING) => {
                c.health = Some("UNKNOWN".into());
                all_checked_healthy = false;
            }
            _ => {}
        }
    }
    if essential_exit.is_some() {
        stop_containers(docker, task).await;
        finish(
            task,
            now,
            Some("Essential container in task exited".into()),
            Some("EssentialContainerExited"),
        );
        return;
    }
    task.seen_running_at = Some(look);
    copy_output(docker, task, look).await;
    if !task.has_health_check {
        return;
    }
    if any_unhealthy {
        task.health_status = "UNHEALTHY".into();
        stop_containers(docker, task).await;
        finish(
            task,
            now,
            Some("Task failed container health checks".into()),
            Some("TaskFailedToStart"),
        );
    } else if all_checked_healthy {
        task.health_status = "HEALTHY".into();
    }
}

/// Stops a task's containers with no grace period and removes them, keeping any exit code they
/// already had; a container that cannot be read counts as killed (137).
async fn stop_containers(docker: &Docker, task: &mut Task) {
    for c in task.containers.iter_mut() {
        if let Some(id) = &c.docker_id {
            let (code, lines) = stop_and_remove(docker, id, 0).await;
            c.exit_code = c.exit_code.or(code).or(Some(137));
            task.logs.insert(c.name.clone(), lines);
        }
        c.last_status = "STOPPED".into();
    }
}

/// MiB to bytes for Docker, at least Docker's 6 MiB minimum, without overflow.
fn mib_to_bytes(mib: u64) -> i64 {
    i64::try_from(mib.clamp(6, 1 << 40).saturating_mul(1024 * 1024)).unwrap_or(i64::MAX)
}

/// Removes every container this sandbox instance started (on shutdown).
pub async fn remove_all(docker: &Docker, instance: &str) {
    let filters = HashMap::from([(
        "label".to_string(),
        vec![format!("deckhand.sandbox={instance}")],
    )]);
    let options = bollard::query_parameters::ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&filters)
        .build();
    if let Ok(list) = docker.list_containers(Some(options)).await {
        for c in list {
            if let Some(id) = c.id {
                let options = RemoveContainerOptionsBuilder::default().force(true).build();
                let _ = docker.remove_container(&id, Some(options)).await;
            }
        }
    }
}

fn reconcile_services(options: &Options, state: &mut State, cluster: &str) {
    let now = super::now();
    let names: Vec<String> = state.clusters[cluster].services.keys().cloned().collect();
    for name in names {
        count_failures(state, cluster, &name, now);
        progress::watch_alarms(state, cluster, &name, now);
        trip_breaker(state, cluster, &name, now);
        apply_plan(options, state, cluster, &name, now);
        progress::finish_rollbacks(state, cluster, &name, now);
    }
}

/// Counts newly failed tasks against their deployment.
fn count_failures(state: &mut State, cluster: &str, service: &str, now: Time) {
    let c = state.clusters.get_mut(cluster).expect("cluster");
    let group = format!("service:{service}");
    let mut failed: Vec<(String, String, String)> = Vec::new();
    for t in c
        .tasks
        .values_mut()
        .filter(|t| t.group == group && !t.is_live() && !t.failure_counted)
    {
        t.failure_counted = true;
        failed.push((
            t.started_by.clone(),
            t.id.clone(),
            t.stopped_reason.clone().unwrap_or_default(),
        ));
    }
    let s = c.services.get_mut(service).expect("service");
    for (deployment, task, reason) in failed {
        if let Some(d) = s.deployments.iter_mut().find(|d| d.id == deployment) {
            d.failed_tasks += 1;
            d.updated_at = now;
        }
        if let Some(set) = s.task_sets.iter_mut().find(|t| t.id == deployment) {
            set.failed_tasks += 1;
        }
        if reason.contains("health checks") {
            let msg = format!("(service {service}) (task {task}) failed container health checks.");
            s.push_event(event_id(), now, msg);
        }
    }
}

fn trip_breaker(state: &mut State, cluster: &str, service: &str, now: Time) {
    let s = state
        .clusters
        .get_mut(cluster)
        .and_then(|c| c.services.get_mut(service))
        .expect("service");
    let Some(primary) = s.primary().cloned() else {
        return;
    };
    if !s.breaker.enable || !scheduler::breaker_tripped(&primary) {
        return;
    }
    if primary.progress.as_ref().is_some_and(|p| p.active()) {
        let msg = format!(
            "(service {service}) (deployment {}) deployment failed: tasks failed to start.",
            primary.id
        );
        s.push_event(event_id(), now, msg);
        let reason = "ECS deployment circuit breaker: tasks failed to start.";
        progress::fail(s, &primary.id, reason, s.breaker.rollback, true, now);
        return;
    }
    if primary.progress.is_some() {
        return;
    }
    // A rollback that fails is not rolled back again: the service needs a person.
    let target = match primary.rollback_of {
        Some(_) => None,
        None => scheduler::rollback_target(s, &primary.id).map(str::to_string),
    };
    if let Some(d) = s.deployments.iter_mut().find(|d| d.id == primary.id) {
        d.rollout = Rollout::Failed;
        d.rollout_reason = "ECS deployment circuit breaker: tasks failed to start.".into();
        d.updated_at = now;
    }
    let msg = format!(
        "(service {service}) (deployment {}) deployment failed: tasks failed to start.",
        primary.id
    );
    s.push_event(event_id(), now, msg);
    if let (true, Some(target)) = (s.breaker.rollback, target) {
        let id = ecs::start_deployment(s, &target, now, Some(&primary.id));
        let msg = format!("(service {service}) rolling back to deployment {id}.");
        s.push_event(event_id(), now, msg);
    }
}

fn apply_plan(options: &Options, state: &mut State, cluster: &str, service: &str, now: Time) {
    let (used_memory, used_cpu) = state
        .clusters
        .values()
        .flat_map(|c| c.tasks.values())
        .filter(|t| t.is_live())
        .fold((0u64, 0u64), |(m, c), t| {
            (m.saturating_add(t.memory), c.saturating_add(t.cpu))
        });
    let demands: HashMap<String, (u64, u64)> = state
        .families
        .values()
        .flatten()
        .map(|d| (d.arn.clone(), d.demand()))
        .collect();
    let c = &state.clusters[cluster];
    let s = &c.services[service];
    let group = format!("service:{service}");
    let live: Vec<&Task> = c
        .tasks
        .values()
        .filter(|t| t.group == group && t.is_live())
        .collect();
    let (mut memory, mut cpu) = (used_memory, used_cpu);
    let stable = options.stable_after.as_secs_f64();
    let fits = |td: &str| {
        let (m, u) = demands.get(td).copied().unwrap_or((0, 0));
        if memory.saturating_add(m) > options.memory_mib
            || cpu.saturating_add(u) > options.cpu_units
        {
            return false;
        }
        memory += m;
        cpu += u;
        true
    };
    if s.controller.uses_task_sets() {
        let (actions, steady) = crate::taskset::plan(s, &live, stable, fits);
        apply_task_set_plan(options, state, cluster, service, actions, steady, now);
        return;
    }
    let strategy = s
        .primary()
        .and_then(|d| d.progress.as_ref())
        .is_some_and(|p| p.active());
    let (actions, facts) = if strategy {
        let (a, f) = scheduler::plan_strategy(s, &live, stable, fits);
        (a, Some(f))
    } else {
        (scheduler::plan(s, &live, stable, fits), None)
    };

    let mut started = Vec::new();
    let mut stopped = Vec::new();
    for action in actions {
        match action {
            Action::Start {
                deployment,
                task_definition,
            } => {
                let Some(td) = state.task_definition(&task_definition).cloned() else {
                    continue;
                };
                let c = state.clusters.get_mut(cluster).expect("cluster");
                let task = ecs::new_task(c, &td, &deployment, &group, now);
                started.push(task.id.clone());
                c.tasks.insert(task.id.clone(), task);
            }
            Action::Stop { task, reason } => {
                let c = state.clusters.get_mut(cluster).expect("cluster");
                if let Some(t) = c.tasks.get_mut(&task) {
                    t.desired_status = "STOPPED".into();
                    t.stopped_reason.get_or_insert(reason);
                    t.stop_code
                        .get_or_insert("ServiceSchedulerInitiated".into());
                    t.failure_counted = true;
                    stopped.push(task);
                }
            }
            Action::Complete { deployment } => {
                let s = state
                    .clusters
                    .get_mut(cluster)
                    .and_then(|c| c.services.get_mut(service))
                    .expect("service");
                let mut done = Vec::new();
                s.deployments.retain(|d| {
                    let keep = d.id == deployment;
                    if !keep {
                        done.push(d.clone());
                    }
                    keep
                });
                s.history.extend(done);
                if let Some(d) = s.deployments.iter_mut().find(|d| d.id == deployment) {
                    d.rollout = Rollout::Completed;
                    d.rollout_reason = format!("ECS deployment {deployment} completed.");
                    d.updated_at = now;
                }
                s.push_event(
                    event_id(),
                    now,
                    format!("(service {service}) (deployment {deployment}) deployment completed."),
                );
                s.push_event(
                    event_id(),
                    now,
                    format!("(service {service}) has reached a steady state."),
                );
            }
            Action::Unplaceable { .. } => {
                let s = state
                    .clusters
                    .get_mut(cluster)
                    .and_then(|c| c.services.get_mut(service))
                    .expect("service");
                let msg = format!(
                    "(service {service}) was unable to place a task because no container instance met all of its \
                     requirements. The closest matching (container-instance sandbox) has insufficient memory or CPU \
                     available. For more information, see the Troubleshooting section of the Amazon ECS Developer Guide."
                );
                let recent = s.events.iter().any(|e| {
                    e.message == msg && now - e.created_at < 5.0 * options.time_scale.max(0.2)
                });
                if !recent {
                    s.push_event(event_id(), now, msg);
                }
            }
        }
    }
    let s = state
        .clusters
        .get_mut(cluster)
        .and_then(|c| c.services.get_mut(service))
        .expect("service");
    if !started.is_empty() {
        let list: String = started.iter().map(|t| format!(" (task {t})")).collect();
        s.push_event(
            event_id(),
            now,
            format!(
                "(service {service}) has started {} tasks:{list}.",
                started.len()
            ),
        );
    }
    if !stopped.is_empty() {
        let list: String = stopped.iter().map(|t| format!(" (task {t})")).collect();
        s.push_event(
            event_id(),
            now,
            format!(
                "(service {service}) has stopped {} running tasks:{list}.",
                stopped.len()
            ),
        );
    }
    if let Some(facts) = facts {
        progress::advance_strategy(options, s, facts, now);
    }
}

/// Carries out a task set service's actions, with events as ECS words them for task sets,
/// and forgets DRAINING sets whose tasks have all stopped.
fn apply_task_set_plan(
    options: &Options,
    state: &mut State,
    cluster: &str,
    service: &str,
    actions: Vec<Action>,
    steady: Vec<(String, bool)>,
    now: Time,
) {
    let group = format!("service:{service}");
    let mut started: Vec<(String, String)> = Vec::new();
    let mut stopped: Vec<(String, String)> = Vec::new();
    let mut unplaceable = false;
    for action in actions {
        match action {
            Action::Start {
                deployment,
                task_definition,
            } => {
                let Some(td) = state.task_definition(&task_definition).cloned() else {
                    continue;
                };
                let c = state.clusters.get_mut(cluster).expect("cluster");
                let task = ecs::new_task(c, &td, &deployment, &group, now);
                started.push((deployment, task.id.clone()));
                c.tasks.insert(task.id.clone(), task);
            }
            Action::Stop { task, reason } => {
                let c = state.clusters.get_mut(cluster).expect("cluster");
                if let Some(t) = c.tasks.get_mut(&task) {
                    t.desired_status = "STOPPED".into();
                    t.stopped_reason.get_or_insert(reason);
                    t.stop_code
                        .get_or_insert("ServiceSchedulerInitiated".into());
                    t.failure_counted = true;
                    stopped.push((t.started_by.clone(), task));
                }
            }
            Action::Unplaceable { .. } => unplaceable = true,
            Action::Complete { .. } => {}
        }
    }
    let c = state.clusters.get_mut(cluster).expect("cluster");
    let live: Vec<String> = c
        .tasks
        .values()
        .filter(|t| t.group == group && t.is_live())
        .map(|t| t.started_by.clone())
        .collect();
    let s = c.services.get_mut(service).expect("service");
    for (what, list) in [("has started", &started), ("has stopped", &stopped)] {
        let mut sets: Vec<&String> = list.iter().map(|(set, _)| set).collect();
        sets.dedup();
        for set in sets {
            let tasks: Vec<String> = list
                .iter()
                .filter(|(s, _)| s == set)
                .map(|(_, t)| format!(" (task {t})"))
                .collect();
            let running = if what == "has stopped" {
                " running"
            } else {
                ""
            };
            let msg = format!(
                "(service {service}, taskSet {set}) {what} {}{running} tasks:{}.",
                tasks.len(),
                tasks.concat()
            );
            s.push_event(event_id(), now, msg);
        }
    }
    if unplaceable {
        let msg = format!(
            "(service {service}) was unable to place a task because no container instance met all of its requirements."
        );
        let recent = s
            .events
            .iter()
            .any(|e| e.message == msg && now - e.created_at < 5.0 * options.time_scale.max(0.2));
        if !recent {
            s.push_event(event_id(), now, msg);
        }
    }
    let mut reached = false;
    for set in s.task_sets.iter_mut() {
        let now_steady = steady.iter().any(|(id, ok)| *id == set.id && *ok);
        if now_steady && !set.steady {
            set.updated_at = now;
            reached = set.status == crate::taskset::Status::Primary || reached;
        }
        set.steady = now_steady;
    }
    s.task_sets
        .retain(|set| set.status != crate::taskset::Status::Draining || live.contains(&set.id));
    if reached {
        s.push_event(
            event_id(),
            now,
            format!("(service {service}) has reached a steady state."),
        );
    }
}

fn prune_stopped(state: &mut State, cluster: &str) {
    let c = state.clusters.get_mut(cluster).expect("cluster");
    let mut stopped: Vec<(Time, String)> = c
        .tasks
        .values()
        .filter(|t| !t.is_live())
        .map(|t| (t.stopped_at.unwrap_or(0.0), t.id.clone()))
        .collect();
    if stopped.len() > STOPPED_KEPT {
        stopped.sort_by(|a, b| a.0.total_cmp(&b.0));
        for (_, id) in stopped.iter().take(stopped.len() - STOPPED_KEPT) {
            c.tasks.remove(id);
        }
    }
}

pub(crate) fn event_id() -> String {
    super::random_hex(8) + "-sandbox"
}

/// The default tick: how often tasks are observed when nothing calls the API.
pub const DEFAULT_TICK: Duration = Duration::from_millis(250);

#[cfg(test)]
mod tests {
    use super::*;

    use crate::ecs;
    use crate::model::{Place, Rollout};
    use crate::progress::{finish_rollbacks, watch_alarms};
    use serde_json::json;

    fn state_with_failing(rollback_of: Option<&str>) -> State {
        let mut state = State::new(Place {
            region: "us-east-1".into(),
            account: "1".into(),
        });
        let td = json!({"family": "f", "containerDefinitions": [{"name": "a", "image": "i"}]});
        ecs::handle(
            &mut state,
            "CreateCluster",
            &json!({"clusterName": "c"}),
            0.0,
        )
        .unwrap();
        ecs::handle(&mut state, "RegisterTaskDefinition", &td, 0.0).unwrap();
        ecs::handle(&mut state, "RegisterTaskDefinition", &td, 0.0).unwrap();
        let svc = json!({"cluster": "c", "serviceName": "s", "taskDefinition": "f:1", "desiredCount": 1,
                         "deploymentConfiguration": {"deploymentCircuitBreaker": {"enable": true, "rollback": true}}});
        ecs::handle(&mut state, "CreateService", &svc, 0.0).unwrap();
        let s = state
            .clusters
            .get_mut("c")
            .unwrap()
            .services
            .get_mut("s")
            .unwrap();
        s.deployments[0].rollout = Rollout::Completed;
        ecs::start_deployment(
            s,
            "arn:aws:ecs:us-east-1:1:task-definition/f:2",
            1.0,
            rollback_of,
        );
        s.deployments[0].failed_tasks = 3;
        state
    }

    #[test]
    fn the_breaker_rolls_back_once_and_a_failed_rollback_is_left_for_a_person() {
        let mut state = state_with_failing(None);
        trip_breaker(&mut state, "c", "s", 2.0);
        let s = &state.clusters["c"].services["s"];
        assert_eq!(s.deployments.len(), 3, "a rollback deployment was started");
        assert!(s.deployments[0].rollback_of.is_some());

        let mut state = state_with_failing(Some("ecs-svc/earlier"));
        trip_breaker(&mut state, "c", "s", 2.0);
        let s = &state.clusters["c"].services["s"];
        assert_eq!(s.deployments.len(), 2, "no rollback of a rollback");
        assert_eq!(s.deployments[0].rollout, Rollout::Failed);
    }

    /// A BLUE_GREEN deployment of f:2 in progress over a completed one of f:1, its tasks
    /// failed past the threshold; the breaker rolls back or not.
    fn strategy_failing(rollback: bool) -> State {
        let mut state = state_with_failing(None);
        let s = state
            .clusters
            .get_mut("c")
            .unwrap()
            .services
            .get_mut("s")
            .unwrap();
        s.breaker.rollback = rollback;
        s.deployments.remove(0);
        s.strategy = crate::strategy::read(
            &json!({"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 0}),
            &Default::default(),
        )
        .unwrap();
        ecs::start_deployment(s, "arn:aws:ecs:us-east-1:1:task-definition/f:2", 1.0, None);
        s.deployments[0].failed_tasks = 3;
        state
    }

    fn status_of_newest(state: &State) -> String {
        let s = &state.clusters["c"].services["s"];
        s.service_deployments_brief(&[])[0]["status"]
            .as_str()
            .unwrap()
            .to_string()
    }

    #[test]
    fn the_breaker_rolls_a_strategy_deployment_back_to_its_source_or_stops_it() {
        let mut state = strategy_failing(true);
        trip_breaker(&mut state, "c", "s", 2.0);
        assert_eq!(status_of_newest(&state), "ROLLBACK_IN_PROGRESS");
        let s = &state.clusters["c"].services["s"];
        assert_eq!(s.deployments.len(), 1, "only the source is left");
        assert!(s.task_definition.ends_with("f:1"));
        finish_rollbacks(&mut state, "c", "s", 3.0);
        assert_eq!(
            status_of_newest(&state),
            "ROLLBACK_SUCCESSFUL",
            "no green task left"
        );

        let mut state = strategy_failing(false);
        trip_breaker(&mut state, "c", "s", 2.0);
        assert_eq!(status_of_newest(&state), "STOPPED");
        let s = &state.clusters["c"].services["s"];
        assert!(s.task_definition.ends_with("f:2"), "not rolled back");
    }

    #[test]
    fn an_alarm_in_alarm_fails_the_deployment_that_watches_it() {
        let mut state = strategy_failing(true);
        let s = state
            .clusters
            .get_mut("c")
            .unwrap()
            .services
            .get_mut("s")
            .unwrap();
        s.deployments[0].failed_tasks = 0;
        s.deployments[0].config.alarms = Some(crate::strategy::Alarms {
            names: vec!["errors".into()],
            enable: true,
            rollback: true,
        });
        state.alarms.insert("other".into(), "ALARM".into());
        watch_alarms(&mut state, "c", "s", 2.0);
        assert_eq!(status_of_newest(&state), "PENDING", "not its alarm");
        state.alarms.insert("errors".into(), "ALARM".into());
        watch_alarms(&mut state, "c", "s", 2.0);
        assert_eq!(status_of_newest(&state), "ROLLBACK_IN_PROGRESS");
        let s = &state.clusters["c"].services["s"];
        assert_eq!(s.history.last().unwrap().triggered_alarms, ["errors"]);
    }

    #[test]
    fn memory_reservation_is_a_soft_limit() {
        let td = crate::model::TaskDefinition {
            family: "f".into(),
            revision: 1,
            arn: "a".into(),
            active: true,
            body: json!({"memory": "512", "containerDefinitions": [
                {"name": "a", "image": "i", "memoryReservation": 128},
                {"name": "b", "image": "i", "memory": 64, "stopTimeout": 5}
            ]}),
            tags: json!([]),
            registered_at: 0.0,
            deregistered_at: None,
        };
        let c = td.containers();
        assert_eq!((c[0].memory, c[0].memory_reservation), (None, Some(128)));
        assert_eq!((c[1].memory, c[1].stop_timeout), (Some(64), 5));
        assert_eq!(c[0].stop_timeout, 30);
        assert_eq!(mib_to_bytes(u64::MAX), (1i64 << 40) * 1024 * 1024);
    }

    #[test]
    fn only_loopback_registries_are_pulled_from() {
        assert!(is_loopback_reference("127.0.0.1:5000/app:1"));
        assert!(is_loopback_reference("localhost/app"));
        assert!(!is_loopback_reference("nginx:latest"));
        assert!(!is_loopback_reference("docker.io/library/nginx"));
        assert!(!is_loopback_reference(
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/app:1"
        ));
    }
}
