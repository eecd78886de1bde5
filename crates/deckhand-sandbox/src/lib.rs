//! A local ECS control plane (with ECR, STS, CloudWatch Logs and CodeDeploy for ECS
//! blue/green) on the Docker engine, so deploys, waits and rollbacks can be rehearsed and
//! tested with real containers and no AWS account. Written from the AWS API reference and
//! developer guide; it shares no code or rules with deckhand, so a mistake in the client is
//! not repeated here.

pub mod bluegreen;
pub mod codedeploy;
pub mod deployments;
pub mod ecr;
pub mod ecs;
pub mod faults;
pub mod http;
pub mod lifecycle;
pub mod logs;
pub mod model;
pub mod progress;
pub mod registry;
pub mod runner;
pub mod scheduler;
pub mod strategy;
pub mod taskset;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bollard::Docker;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{Mutex, Notify};
use tokio::task::JoinHandle;
use tracing::debug;

use model::{Place, State};

/// How the sandbox runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where to listen; loopback only.
    pub listen: SocketAddr,
    /// How often tasks are observed and services moved along.
    pub tick: Duration,
    /// Factor applied to health-check intervals, timeouts and start periods (0.1 = ten times
    /// faster than the task definition says).
    pub time_scale: f64,
    /// How long a task without a health check must stay running to count as healthy.
    pub stable_after: Duration,
    /// How answers report what runs (see [`model::Mode`]); `/_sandbox/mode` changes it later.
    pub mode: model::Mode,
    /// Capacity of the one pretend container instance.
    pub memory_mib: u64,
    pub cpu_units: u64,
    pub region: String,
    pub account: String,
    /// Faults in force from the start.
    pub faults: faults::Faults,
    /// Where registry blobs are kept (default: a fresh directory under the system temp dir,
    /// removed on stop).
    pub data_dir: Option<std::path::PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 4566)),
            tick: runner::DEFAULT_TICK,
            time_scale: 0.1,
            stable_after: Duration::from_secs(1),
            mode: model::Mode::default(),
            memory_mib: 8192,
            cpu_units: 8192,
            region: "us-east-1".into(),
            account: "123456789012".into(),
            faults: faults::Faults::default(),
            data_dir: None,
        }
    }
}

/// What the server and the runner share.
pub struct Shared {
    pub state: Mutex<State>,
    /// Wakes the runner early after an API call changed something.
    pub wake: Notify,
    pub options: Options,
    pub place: Place,
    /// Tells this sandbox's containers apart from other sandboxes' on the same engine.
    pub instance: String,
    pub faults: std::sync::Mutex<faults::Faults>,
    /// API calls served, by operation (`ECS.DescribeServices`, …): what a client costs. A call
    /// applied whose answer was then lost (a fault) counts.
    pub calls: std::sync::Mutex<std::collections::BTreeMap<String, u64>>,
    /// API calls served, by the access key id their SigV4 signature names: whose credentials
    /// a client used.
    pub access_keys: std::sync::Mutex<std::collections::BTreeMap<String, u64>>,
    pub docker: Docker,
    /// `127.0.0.1:PORT`: the registry host in repository URIs and the ECR proxy endpoint.
    pub host: String,
    /// The registry password GetAuthorizationToken hands out.
    pub password: String,
    pub blobs: registry::Blobs,
    /// A blob directory the sandbox made itself and removes on stop.
    owned_data: Option<std::path::PathBuf>,
}

impl Shared {
    /// Forgets every cluster, service, task and task definition, and all CodeDeploy state
    /// (the hook results with it), and removes the containers;
    /// the mode, like the faults, stays as it is.
    pub async fn reset(&self) {
        let mut state = self.state.lock().await;
        runner::remove_all(&self.docker, &self.instance).await;
        let mode = state.mode;
        *state = State::new(self.place.clone());
        state.mode = mode;
        self.blobs.clear();
    }
}

/// A task definition as the sandbox stored it (see [`Sandbox::task_definition`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Registered {
    pub arn: String,
    /// The registered members (nulls and tags left out), with the defaults ECS fills in.
    pub body: serde_json::Value,
    /// `[{"key": …, "value": …}]`.
    pub tags: serde_json::Value,
}

/// A running sandbox.
pub struct Sandbox {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    docker: Docker,
    server: JoinHandle<()>,
    runner: JoinHandle<()>,
}

/// `n` random lower-case hex digits, for the ids the sandbox makes up.
pub fn random_hex(n: usize) -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..n)
        .map(|_| char::from_digit(rng.random_range(0..16), 16).expect("a hex digit"))
        .collect()
}

/// A point in time: seconds since the epoch, as ECS reports times.
pub type Time = f64;

/// Seconds since the epoch, as ECS reports times.
pub fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Why a sandbox could not start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartError {
    /// The options are wrong (a non-loopback address, an invalid fault rate).
    Options(String),
    /// The options are fine but the machine said no (port in use, unwritable directory).
    Unavailable(String),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Options(m) | StartError::Unavailable(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for StartError {}

impl Sandbox {
    /// Binds the listener and starts serving and scheduling.
    pub async fn start(options: Options, docker: Docker) -> Result<Sandbox, StartError> {
        if !options.listen.ip().is_loopback() {
            return Err(StartError::Options(format!(
                "the sandbox listens on loopback addresses only, not {}; use 127.0.0.1:PORT",
                options.listen
            )));
        }
        let listener = TcpListener::bind(options.listen).await.map_err(|e| {
            StartError::Unavailable(format!(
                "cannot listen on {}: {e}. Pick a free port with --listen 127.0.0.1:PORT.",
                options.listen
            ))
        })?;
        let addr = listener
            .local_addr()
            .map_err(|e| StartError::Unavailable(e.to_string()))?;
        let place = Place {
            region: options.region.clone(),
            account: options.account.clone(),
        };
        options.faults.validate().map_err(StartError::Options)?;
        let instance = format!("{:08x}", rand::random::<u32>());
        let (data, owned_data) = match &options.data_dir {
            Some(d) => (d.clone(), None),
            None => {
                let d = std::env::temp_dir().join(format!("deckhand-sandbox-{instance}"));
                (d.clone(), Some(d))
            }
        };
        let blobs = registry::Blobs::new(data.clone()).map_err(|e| {
            StartError::Unavailable(format!(
                "cannot use {} for registry blobs: {e}",
                data.display()
            ))
        })?;
        let password = format!(
            "{:016x}{:016x}",
            rand::random::<u64>(),
            rand::random::<u64>()
        );
        let shared = Arc::new(Shared {
            host: addr.to_string(),
            password,
            blobs,
            owned_data,
            state: Mutex::new(State {
                mode: options.mode,
                ..State::new(place.clone())
            }),
            wake: Notify::new(),
            faults: std::sync::Mutex::new(options.faults.clone()),
            calls: Default::default(),
            access_keys: Default::default(),
            options,
            place,
            instance,
            docker: docker.clone(),
        });
        let server = tokio::spawn(accept_loop(listener, shared.clone()));
        let runner = tokio::spawn(runner::run(shared.clone(), docker.clone()));
        Ok(Sandbox {
            addr,
            shared,
            docker,
            server,
            runner,
        })
    }

    /// The endpoint URL to give AWS clients.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The registry password that GetAuthorizationToken hands out (a caller that prints output
    /// masks it).
    pub fn password(&self) -> &str {
        &self.shared.password
    }

    /// The value of the `deckhand.sandbox` label on every container this sandbox starts.
    pub fn instance(&self) -> &str {
        &self.shared.instance
    }

    /// API calls answered so far, by operation (`ECS.DescribeServices`, …); the same as
    /// `GET /_sandbox/calls`.
    pub fn calls(&self) -> std::collections::BTreeMap<String, u64> {
        self.shared
            .calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// API calls served so far, by the access key id of their SigV4 `Authorization` header
    /// (`Credential=AKID/…`); unsigned calls are not counted.
    pub fn access_keys(&self) -> std::collections::BTreeMap<String, u64> {
        self.shared
            .access_keys
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// A registered task definition (`family:revision` or its ARN) as it is stored: what
    /// DescribeTaskDefinition returns, and its tags.
    pub async fn task_definition(&self, reference: &str) -> Option<Registered> {
        let state = self.shared.state.lock().await;
        state.task_definition(reference).map(|d| Registered {
            arn: d.arn.clone(),
            body: d.body.clone(),
            tags: d.tags.clone(),
        })
    }

    /// Stops serving and removes every container this sandbox started.
    pub async fn stop(self) {
        self.server.abort();
        self.runner.abort();
        let _ = self.runner.await;
        runner::remove_all(&self.docker, &self.shared.instance).await;
        if let Some(dir) = &self.shared.owned_data {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| http::serve(shared.clone(), req));
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                debug!("sandbox: connection from {peer}: {e}");
            }
        });
    }
}
