//! Pushes tagged images to a registry through the Docker engine, and asks a registry whether
//! a tag is already there.

use bollard::auth::DockerCredentials;
use bollard::query_parameters::{CreateImageOptionsBuilder, PushImageOptionsBuilder};
use bollard::Docker;
use futures_util::StreamExt;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use tracing::debug;

use crate::error::{Error, Result};
use crate::image::reference::check_digest;
use crate::redact::Secret;

/// Registry login for one push.
#[derive(Debug, Clone)]
pub struct Login {
    pub username: String,
    pub password: Secret,
    /// Registry host[:port].
    pub server: String,
}

impl Login {
    fn credentials(&self) -> DockerCredentials {
        DockerCredentials {
            username: Some(self.username.clone()),
            password: Some(self.password.expose().to_string()),
            serveraddress: Some(self.server.clone()),
            ..Default::default()
        }
    }
}

/// Pushes `repo:tag` and returns the manifest digest the registry reported. Transient registry
/// failures (5xx, dropped connections) are retried a few times with jittered backoff; a
/// rejected login or an unreachable registry is reported at once.
pub async fn push(
    r: &crate::report::Reporter,
    docker: &Docker,
    repo: &str,
    tag: &str,
    login: &Login,
) -> Result<Option<String>> {
    let policy = ExponentialBuilder::default()
        .with_min_delay(Duration::from_secs(1))
        .with_max_delay(Duration::from_secs(8))
        .with_max_times(PUSH_RETRIES)
        .with_jitter();
    (|| push_once(r, docker, repo, tag, login))
        .retry(policy)
        .when(|detail: &String| is_transient(detail))
        .notify(|detail: &String, wait: Duration| {
            r.warn(format!(
                "push of {repo}:{tag} failed ({}); retrying in {:.1}s",
                detail.trim(),
                wait.as_secs_f64()
            ))
        })
        .await
        .map_err(|detail| registry_error(&login.server, &format!("push of {repo}:{tag}"), &detail))
}

/// Retries after the first attempt of a push that failed transiently.
const PUSH_RETRIES: usize = 3;

/// One push attempt; the error is the engine's own words.
async fn push_once(
    r: &crate::report::Reporter,
    docker: &Docker,
    repo: &str,
    tag: &str,
    login: &Login,
) -> Result<Option<String>, String> {
    let options = PushImageOptionsBuilder::default().tag(tag).build();
    let mut progress = docker.push_image(repo, Some(options), Some(login.credentials()));
    let mut digest = None;
    while let Some(item) = progress.next().await {
        match item {
            Ok(info) => {
                let Some(status) = info.status else { continue };
                if let Some(d) = digest_in_status(&status) {
                    digest = Some(d);
                    r.output(format!("  {status}"));
                } else if status.starts_with("Pushed")
                    || status.starts_with("Layer already exists")
                    || status.starts_with("The push refers to")
                {
                    r.output(format!("  {status}"));
                } else {
                    debug!("  {status}");
                }
            }
            Err(bollard::errors::Error::DockerStreamError { error }) => return Err(error),
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(digest)
}

/// True for registry failures worth another attempt: server errors and dropped connections,
/// not a rejected login, a missing repository or a registry that is not there at all.
pub fn is_transient(detail: &str) -> bool {
    let d = detail.to_ascii_lowercase();
    let permanent = [
        "unauthorized",
        "denied",
        "authentication required",
        "connection refused",
        "no such host",
        "name unknown",
    ];
    if permanent.iter().any(|p| d.contains(p)) {
        return false;
    }
    [
        "status: 50",
        "status code 50",
        "connection reset",
        "broken pipe",
        "unexpected eof",
        "i/o timeout",
        "toomanyrequests",
    ]
    .iter()
    .any(|t| d.contains(t))
}

/// Pulls `reference` into the engine (to re-tag an image that is already pushed).
pub async fn pull(docker: &Docker, reference: &str, login: &Login) -> Result<()> {
    let options = CreateImageOptionsBuilder::default()
        .from_image(reference)
        .build();
    let mut progress = docker.create_image(Some(options), None, Some(login.credentials()));
    while let Some(item) = progress.next().await {
        if let Err(e) = item {
            return Err(registry_error(
                &login.server,
                &format!("pull of {reference}"),
                &e.to_string(),
            ));
        }
    }
    Ok(())
}

/// The manifest digest of `repo:tag` in the registry, or `None` if the tag is not there.
pub async fn remote_digest(
    docker: &Docker,
    repo: &str,
    tag: &str,
    login: &Login,
) -> Result<Option<String>> {
    let reference = format!("{repo}:{tag}");
    match docker
        .inspect_registry_image(&reference, Some(login.credentials()))
        .await
    {
        Ok(inspect) => Ok(inspect.descriptor.digest),
        Err(e) => {
            let text = e.to_string();
            if is_not_found(&text) {
                Ok(None)
            } else {
                Err(registry_error(
                    &login.server,
                    &format!("lookup of {reference}"),
                    &text,
                ))
            }
        }
    }
}

/// `<tag>: digest: sha256:… size: N` is how the engine reports the pushed manifest.
pub fn digest_in_status(status: &str) -> Option<String> {
    let rest = &status[status.find("digest: ")? + "digest: ".len()..];
    let digest = rest.split_whitespace().next()?;
    check_digest(digest).is_ok().then(|| digest.to_string())
}

fn is_not_found(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    t.contains("manifest unknown") || t.contains("not found") || t.contains("name unknown")
}

/// Turns a registry failure into advice: wrong login, registry not reachable, or other.
pub fn registry_error(server: &str, what: &str, detail: &str) -> Error {
    let d = detail.to_ascii_lowercase();
    let advice = if d.contains("unauthorized")
        || d.contains("authentication required")
        || d.contains("no basic auth credentials")
        || d.contains("denied")
    {
        format!(
            "the registry {server} rejected the login from ECR's GetAuthorizationToken. Check that the \
             AWS credentials may push to this repository (ecr:GetAuthorizationToken, ecr:*LayerUpload*, \
             ecr:PutImage), and that --registry, if given, fronts this account's ECR."
        )
    } else if d.contains("connection refused")
        || d.contains("no such host")
        || d.contains("dial tcp")
        || d.contains("i/o timeout")
        || d.contains("connection reset")
    {
        format!("cannot reach the registry {server}. Check that it is up and that --registry, if given, is right.")
    } else {
        format!("the registry {server} refused it.")
    };
    Error::failed(format!(
        "the {what} failed: {advice}\n  engine said: {}",
        detail.trim()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_is_read_from_the_final_status() {
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            digest_in_status(&format!("abc: digest: {d} size: 528")),
            Some(d)
        );
        assert_eq!(digest_in_status("Pushed"), None);
        assert_eq!(digest_in_status("x: digest: sha256:short size: 1"), None);
    }

    #[test]
    fn only_transient_registry_failures_are_retried() {
        for d in [
            "received unexpected HTTP status: 503 Service Unavailable",
            "Docker responded with status code 500: x",
            "read tcp 127.0.0.1:1->127.0.0.1:5000: read: connection reset by peer",
            "toomanyrequests: Rate exceeded",
        ] {
            assert!(is_transient(d), "{d}");
        }
        for d in [
            "unauthorized: authentication required",
            "dial tcp 127.0.0.1:5999: connect: connection refused",
            "denied: requested access to the resource is denied",
            "Docker responded with status code 500: unauthorized: x",
        ] {
            assert!(!is_transient(d), "{d}");
        }
    }

    #[test]
    fn registry_errors_give_advice() {
        let e = registry_error(
            "h:5000",
            "push of a:b",
            "unauthorized: authentication required",
        );
        assert!(e.message.contains("rejected the login"), "{}", e.message);
        let e = registry_error(
            "h:5000",
            "push of a:b",
            "Get \"http://h:5000/v2/\": dial tcp 127.0.0.1:5000: connect: connection refused",
        );
        assert!(
            e.message.contains("cannot reach the registry h:5000"),
            "{}",
            e.message
        );
    }
}
