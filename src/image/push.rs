//! Pushes tagged images to a registry through the Docker engine, and asks a registry whether
//! a tag is already there.

use bollard::auth::DockerCredentials;
use bollard::query_parameters::{CreateImageOptionsBuilder, PushImageOptionsBuilder};
use bollard::Docker;
use futures_util::StreamExt;
use tracing::{debug, info};

use crate::error::{Error, Result};

/// Registry login for one push.
#[derive(Clone)]
pub struct Login {
    pub username: String,
    pub password: String,
    /// Registry host[:port].
    pub server: String,
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login")
            .field("username", &self.username)
            .field("password", &"***")
            .field("server", &self.server)
            .finish()
    }
}

impl Login {
    fn credentials(&self) -> DockerCredentials {
        DockerCredentials {
            username: Some(self.username.clone()),
            password: Some(self.password.clone()),
            serveraddress: Some(self.server.clone()),
            ..Default::default()
        }
    }
}

/// Pushes `repo:tag` and returns the manifest digest the registry reported.
pub async fn push(docker: &Docker, repo: &str, tag: &str, login: &Login) -> Result<Option<String>> {
    let options = PushImageOptionsBuilder::default().tag(tag).build();
    let mut progress = docker.push_image(repo, Some(options), Some(login.credentials()));
    let mut digest = None;
    while let Some(item) = progress.next().await {
        match item {
            Ok(info) => {
                let Some(status) = info.status else { continue };
                if let Some(d) = digest_in_status(&status) {
                    digest = Some(d);
                    info!("  {status}");
                } else if status.starts_with("Pushed")
                    || status.starts_with("Layer already exists")
                    || status.starts_with("The push refers to")
                {
                    info!("  {status}");
                } else {
                    debug!("  {status}");
                }
            }
            Err(bollard::errors::Error::DockerStreamError { error }) => {
                return Err(registry_error(
                    &login.server,
                    &format!("push of {repo}:{tag}"),
                    &error,
                ));
            }
            Err(e) => {
                return Err(registry_error(
                    &login.server,
                    &format!("push of {repo}:{tag}"),
                    &e.to_string(),
                ));
            }
        }
    }
    Ok(digest)
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
    (digest.starts_with("sha256:") && digest.len() == 71).then(|| digest.to_string())
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
