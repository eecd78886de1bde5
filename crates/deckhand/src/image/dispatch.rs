//! Runs a build on the builder chosen for it (BuildKit, or the engine's classic builder) and
//! says which one ran and why.

use std::collections::HashMap;

use bollard::Docker;

use super::build::{self, BuildSpec};
use super::builder::{self, Builder, EngineFacts};
use super::context::{Context, Stats};
use super::dockerfile::FeatureUse;
use super::options::BuilderChoice;
use super::push::Login;
use super::{buildkit, wire};
use crate::error::{Error, Result};
use crate::redact::Secret;
use crate::report::Reporter;

/// What a build needs besides its context and spec, read before anything changed.
#[derive(Debug, Default)]
pub struct Prepared {
    /// What the Dockerfile needs of BuildKit.
    pub uses: Vec<FeatureUse>,
    /// `--secret` values by id.
    pub secrets: HashMap<String, Secret>,
    pub builder: BuilderChoice,
}

/// What the engine says of itself, or nothing known when it does not say; `unreachable` is why
/// deckhand cannot open a BuildKit session with it, if it cannot.
async fn facts(docker: &Docker, unreachable: Option<String>) -> EngineFacts {
    match docker.version().await {
        Ok(v) => EngineFacts {
            version: v.version.unwrap_or_default(),
            api_version: v.api_version.unwrap_or_default(),
            os: v.os.unwrap_or_default(),
            unreachable,
        },
        Err(_) => EngineFacts {
            unreachable,
            ..EngineFacts::default()
        },
    }
}

/// Whether the engine has its default bridge network; one started with `--bridge=none` has not,
/// and BuildKit's RUN steps fail there unless told to use another network.
async fn has_bridge(docker: &Docker) -> bool {
    docker
        .inspect_network(
            "bridge",
            None::<bollard::query_parameters::InspectNetworkOptions>,
        )
        .await
        .is_ok()
}

/// Builds `context` on the chosen builder; returns the image id and what the context held.
pub async fn run(
    r: &Reporter,
    docker: &Docker,
    context: Context,
    spec: &BuildSpec,
    prepared: Prepared,
    login: &Login,
) -> Result<(String, Stats)> {
    let address = wire::address();
    let facts = facts(docker, address.as_ref().err().cloned()).await;
    let chosen = builder::choose(
        prepared.builder,
        &facts,
        &prepared.uses,
        !prepared.secrets.is_empty(),
    )?;
    let name = match chosen.builder {
        Builder::BuildKit => "BuildKit",
        Builder::Legacy => "legacy",
    };
    r.step(format!("builder: {name} ({})", chosen.why));
    for warning in &chosen.warnings {
        r.warn(warning.clone());
    }
    match chosen.builder {
        Builder::Legacy => build::build(r, docker, context, spec).await,
        Builder::BuildKit => {
            let mut spec = spec.clone();
            if spec.network.is_none() && !has_bridge(docker).await {
                r.step(
                    "the engine has no bridge network: RUN steps run without a network, as the \
                     classic builder runs them there (--build-network host gives them the host's)",
                );
                spec.network = Some("none".into());
            }
            for source in &spec.cache_from {
                r.step(format!("cache from {source}"));
            }
            // BuildKit is chosen only where the session can be opened.
            let address = address.map_err(Error::failed)?;
            match buildkit::build(r, &address, context, &spec, prepared.secrets, login).await {
                Ok((id, stats, progress)) => {
                    r.step(format!(
                        "{} steps run, {} from the cache",
                        progress.ran, progress.cached
                    ));
                    Ok((id, stats))
                }
                Err(mut e) => {
                    if let Some(hint) = builder::frontend_hint(&e.message, &prepared.uses, &facts) {
                        e.message = format!("{}\n{hint}", e.message);
                    }
                    Err(e)
                }
            }
        }
    }
}
