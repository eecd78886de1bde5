//! The connection to the Docker engine, and plain-language errors when it is not there.

use std::time::Duration;

use bollard::Docker;

use crate::error::{Error, Result};

/// How long a single engine request may take; builds stream for as long as they need.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3600);
/// How long to wait for the engine to answer at all.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// Where the engine is expected, for error messages.
pub fn engine_address() -> String {
    std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".to_string())
}

/// Connects to the engine named by `DOCKER_HOST` (or the default socket) and agrees on an API
/// version with it.
pub async fn connect() -> Result<Docker> {
    let unreachable = |detail: String| {
        Error::failed(format!(
            "cannot reach the Docker engine at {}: {detail}. Start the Docker daemon, or set \
             DOCKER_HOST to where it listens.",
            engine_address()
        ))
    };
    let docker = Docker::connect_with_defaults()
        .map_err(|e| unreachable(e.to_string()))?
        .with_timeout(REQUEST_TIMEOUT);
    match tokio::time::timeout(CONNECT_TIMEOUT, docker.negotiate_version()).await {
        Ok(Ok(docker)) => Ok(docker),
        Ok(Err(e)) => Err(unreachable(e.to_string())),
        Err(_) => Err(unreachable(format!(
            "no answer within {}s",
            CONNECT_TIMEOUT.as_secs()
        ))),
    }
}
