//! The BuildKit session a build runs under: the engine calls back over an upgraded `/session`
//! connection for build secrets and for registry logins (base images, cache imports), so
//! neither ever travels in the build request or lands in the image.

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::Arc;

use bollard_buildkit_proto::health::health_server::{Health, HealthServer};
use bollard_buildkit_proto::health::{
    health_check_response::ServingStatus, HealthCheckRequest, HealthCheckResponse,
    HealthListRequest, HealthListResponse,
};
use bollard_buildkit_proto::moby::buildkit::secrets::v1::secrets_server::{Secrets, SecretsServer};
use bollard_buildkit_proto::moby::buildkit::secrets::v1::{GetSecretRequest, GetSecretResponse};
use bollard_buildkit_proto::moby::filesync::v1::auth_server::{Auth, AuthServer};
use bollard_buildkit_proto::moby::filesync::v1::{
    CredentialsRequest, CredentialsResponse, FetchTokenRequest, FetchTokenResponse,
    GetTokenAuthorityRequest, GetTokenAuthorityResponse, VerifyTokenAuthorityRequest,
    VerifyTokenAuthorityResponse,
};
use futures_util::Stream;
use tokio::task::JoinHandle;
use tonic::{Request, Response, Status};
use tracing::debug;

use super::filesync::{self, Dirs};
use super::push::Login;
use super::wire::{self, Address};
use crate::redact::Secret;
use bollard_buildkit_proto::moby::filesync::v1::file_sync_server::FileSyncServer;

/// The largest gRPC message either side sends: BuildKit's own limit.
const MAX_MESSAGE: usize = 16 << 20;

/// What the session serves.
pub struct Provided {
    /// Build secrets by id.
    pub secrets: HashMap<String, Secret>,
    /// The login deckhand pushes with, handed out for its registry's host only.
    pub login: Login,
    /// The context and the Dockerfile's directory.
    pub files: Arc<Dirs>,
}

/// A running session; the engine knows it by `id`.
pub struct Session {
    pub id: String,
    server: JoinHandle<()>,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// The gRPC methods the session answers, as the engine wants them announced.
const METHODS: [&str; 4] = [
    "/grpc.health.v1.Health/Check",
    "/moby.filesync.v1.Auth/Credentials",
    "/moby.buildkit.secrets.v1.Secrets/GetSecret",
    "/moby.filesync.v1.FileSync/DiffCopy",
];

/// Opens a session on the engine and serves `provided` on it until the session is dropped.
pub async fn open(address: &Address, provided: Provided) -> io::Result<Session> {
    let id = random_id();
    let mut request = wire::request("POST", "/session")
        .header("Connection", "Upgrade")
        .header("Upgrade", "h2c")
        .header("X-Docker-Expose-Session-Uuid", &id)
        .header("X-Docker-Expose-Session-Name", "deckhand")
        .header("X-Docker-Expose-Session-Sharedkey", &id);
    for method in METHODS {
        request = request.header("X-Docker-Expose-Session-Grpc-Method", method);
    }
    let request = request.body(wire::empty()).map_err(io::Error::other)?;
    let response = wire::send(address, request).await?;
    if response.status() != hyper::StatusCode::SWITCHING_PROTOCOLS {
        return Err(io::Error::other(format!(
            "the engine refused a build session (HTTP {})",
            response.status()
        )));
    }
    let upgraded = hyper::upgrade::on(response)
        .await
        .map_err(io::Error::other)?;
    let files = provided.files.clone();
    let provided = Arc::new(provided);
    let routes = tonic::service::Routes::new(HealthServer::new(Healthy))
        .add_service(AuthServer::from_arc(Arc::new(Logins(provided.clone()))))
        .add_service(SecretsServer::from_arc(Arc::new(Served(provided))))
        .add_service(
            FileSyncServer::new(filesync::Files(files))
                .max_decoding_message_size(MAX_MESSAGE)
                .max_encoding_message_size(MAX_MESSAGE),
        );
    // The connection is served in this task, so dropping the session closes it: nothing is
    // handed out once the build is over.
    let server = tokio::spawn(async move {
        let service = hyper_util::service::TowerToHyperService::new(routes.prepare());
        let served = hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
            .serve_connection(upgraded, service)
            .await;
        if let Err(e) = served {
            debug!("build session ended: {e}");
        }
    });
    Ok(Session { id, server })
}

fn random_id() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..25)
        .map(|_| char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[rng.random_range(0..36)]))
        .collect()
}

struct Healthy;

#[tonic::async_trait]
impl Health for Healthy {
    async fn check(
        &self,
        _: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        Ok(Response::new(HealthCheckResponse {
            status: ServingStatus::Serving as i32,
        }))
    }

    async fn list(
        &self,
        _: Request<HealthListRequest>,
    ) -> Result<Response<HealthListResponse>, Status> {
        Err(Status::unimplemented("not served"))
    }

    type WatchStream =
        Pin<Box<dyn Stream<Item = Result<HealthCheckResponse, Status>> + Send + 'static>>;

    async fn watch(
        &self,
        _: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        Err(Status::unimplemented("not served"))
    }
}

struct Logins(Arc<Provided>);

#[tonic::async_trait]
impl Auth for Logins {
    async fn credentials(
        &self,
        request: Request<CredentialsRequest>,
    ) -> Result<Response<CredentialsResponse>, Status> {
        let host = &request.get_ref().host;
        let login = &self.0.login;
        let (username, secret) = if *host == login.server {
            (login.username.clone(), login.password.expose().to_string())
        } else {
            // Anonymous: the engine tries without a login.
            (String::new(), String::new())
        };
        debug!("build session: login for {host} requested");
        Ok(Response::new(CredentialsResponse { username, secret }))
    }

    async fn fetch_token(
        &self,
        _: Request<FetchTokenRequest>,
    ) -> Result<Response<FetchTokenResponse>, Status> {
        Err(Status::unimplemented("not served"))
    }

    async fn get_token_authority(
        &self,
        _: Request<GetTokenAuthorityRequest>,
    ) -> Result<Response<GetTokenAuthorityResponse>, Status> {
        Err(Status::unimplemented("not served"))
    }

    async fn verify_token_authority(
        &self,
        _: Request<VerifyTokenAuthorityRequest>,
    ) -> Result<Response<VerifyTokenAuthorityResponse>, Status> {
        Err(Status::unimplemented("not served"))
    }
}

struct Served(Arc<Provided>);

#[tonic::async_trait]
impl Secrets for Served {
    async fn get_secret(
        &self,
        request: Request<GetSecretRequest>,
    ) -> Result<Response<GetSecretResponse>, Status> {
        let id = &request.get_ref().id;
        match self.0.secrets.get(id) {
            Some(value) => Ok(Response::new(GetSecretResponse {
                data: value.expose().as_bytes().to_vec(),
            })),
            None => Err(Status::not_found(format!(
                "no build secret {id:?} was given (pass --secret id={id},src=FILE or env=VAR)"
            ))),
        }
    }
}
