//! ECR calls: repositories, image lookups and the registry login.

use aws_config::SdkConfig;
use aws_sdk_ecr::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ecr::types::{ImageIdentifier, ImageTagMutability};
use aws_sdk_ecr::Client;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use base64::Engine as _;

use crate::error::{Error, Result};
use crate::redact::{self, Secret};

/// The parts of an ECR repository deckhand needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repository {
    pub name: String,
    pub uri: String,
    pub immutable: bool,
}

/// Registry login from GetAuthorizationToken; the password is masked from the moment it is
/// decoded.
#[derive(Debug, Clone)]
pub struct Authorization {
    pub username: String,
    pub password: Secret,
    /// e.g. `https://123456789012.dkr.ecr.eu-west-1.amazonaws.com`.
    pub proxy_endpoint: String,
}

/// An ECR client bound to one registry (account); an empty registry id is the caller's own.
pub struct Ecr {
    client: Client,
    registry_id: String,
}

impl Ecr {
    pub fn new(config: &SdkConfig, registry_id: &str) -> Self {
        Self {
            client: Client::new(config),
            registry_id: registry_id.to_string(),
        }
    }

    /// The repository, or `None` if it does not exist.
    pub async fn repository(&self, name: &str) -> Result<Option<Repository>> {
        let out = self
            .client
            .describe_repositories()
            .set_registry_id(Some(self.registry_id.clone()).filter(|id| !id.is_empty()))
            .repository_names(name)
            .send()
            .await;
        match out {
            Ok(out) => Ok(out.repositories().first().map(to_repository)),
            Err(SdkError::ServiceError(e)) if e.err().is_repository_not_found_exception() => {
                Ok(None)
            }
            Err(e) => Err(call_failed("DescribeRepositories", &e)),
        }
    }

    /// Creates the repository (mutable tags, scan on push).
    pub async fn create_repository(&self, name: &str) -> Result<Repository> {
        let out = self
            .client
            .create_repository()
            .registry_id(&self.registry_id)
            .repository_name(name)
            .image_tag_mutability(ImageTagMutability::Mutable)
            .send()
            .await
            .map_err(|e| call_failed("CreateRepository", &e))?;
        out.repository()
            .map(to_repository)
            .ok_or_else(|| Error::failed("ECR CreateRepository returned no repository"))
    }

    /// The digest of `repository:tag` in ECR, or `None` if that tag is not there.
    pub async fn image_digest(&self, repository: &str, tag: &str) -> Result<Option<String>> {
        let out = self
            .client
            .describe_images()
            .registry_id(&self.registry_id)
            .repository_name(repository)
            .image_ids(ImageIdentifier::builder().image_tag(tag).build())
            .send()
            .await;
        match out {
            Ok(out) => Ok(out
                .image_details()
                .first()
                .and_then(|d| d.image_digest().map(str::to_string))),
            Err(SdkError::ServiceError(e)) if e.err().is_image_not_found_exception() => Ok(None),
            Err(e) => Err(call_failed("DescribeImages", &e)),
        }
    }

    /// The `n` most recently pushed images tagged with a commit SHA (other than `except`),
    /// newest first: the best cache for a build on a machine that has none.
    pub async fn recent_sha_tags(
        &self,
        repository: &str,
        except: &str,
        n: usize,
    ) -> Result<Vec<String>> {
        let mut pages = self
            .client
            .describe_images()
            .registry_id(&self.registry_id)
            .repository_name(repository)
            .filter(
                aws_sdk_ecr::types::DescribeImagesFilter::builder()
                    .tag_status(aws_sdk_ecr::types::TagStatus::Tagged)
                    .build(),
            )
            .into_paginator()
            .send();
        let mut found: Vec<(aws_smithy_types::DateTime, String)> = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| call_failed("DescribeImages", &e))?;
            for d in page.image_details() {
                let Some(pushed) = d.image_pushed_at() else {
                    continue;
                };
                let tag = d
                    .image_tags()
                    .iter()
                    .find(|t| crate::git::looks_like_sha(t) && t.as_str() != except);
                if let Some(tag) = tag {
                    found.push((*pushed, tag.clone()));
                }
            }
        }
        found.sort_by_key(|(pushed, _)| std::cmp::Reverse(*pushed));
        Ok(found.into_iter().take(n).map(|(_, tag)| tag).collect())
    }

    /// The tags that point at `digest` in `repository`.
    pub async fn tags_of(&self, repository: &str, digest: &str) -> Result<Vec<String>> {
        let out = self
            .client
            .describe_images()
            .registry_id(&self.registry_id)
            .repository_name(repository)
            .image_ids(ImageIdentifier::builder().image_digest(digest).build())
            .send()
            .await
            .map_err(|e| call_failed("DescribeImages", &e))?;
        Ok(out
            .image_details()
            .iter()
            .flat_map(|d| d.image_tags().iter().cloned())
            .collect())
    }

    /// Points `tag` at the image `digest` by re-putting its manifest: no pull, no push, and
    /// the manifest (single image or multi-platform index) stays byte for byte the same.
    pub async fn add_tag(&self, repository: &str, digest: &str, tag: &str) -> Result<()> {
        let got = self
            .client
            .batch_get_image()
            .registry_id(&self.registry_id)
            .repository_name(repository)
            .image_ids(ImageIdentifier::builder().image_digest(digest).build())
            .set_accepted_media_types(Some(MANIFEST_TYPES.iter().map(|s| s.to_string()).collect()))
            .send()
            .await
            .map_err(|e| call_failed("BatchGetImage", &e))?;
        let image = got.images().first().ok_or_else(|| {
            Error::failed(format!(
                "ECR BatchGetImage found no image {repository}@{digest}"
            ))
        })?;
        let mut put = self
            .client
            .put_image()
            .registry_id(&self.registry_id)
            .repository_name(repository)
            .image_manifest(image.image_manifest().unwrap_or_default())
            .image_tag(tag);
        if let Some(media_type) = image.image_manifest_media_type() {
            put = put.image_manifest_media_type(media_type);
        }
        match put.send().await {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(e)) if e.err().is_image_tag_already_exists_exception() => {
                Err(Error::failed(format!(
                    "the tag {tag} already points at another image in {repository}, whose tags are \
                     immutable. Use a tag that changes with each release, or make the repository's \
                     tags mutable."
                )))
            }
            Err(SdkError::ServiceError(e)) if e.err().is_image_already_exists_exception() => Ok(()),
            Err(e) => Err(call_failed("PutImage", &e)),
        }
    }

    /// The registry login for pushing.
    pub async fn authorization(&self) -> Result<Authorization> {
        #[allow(deprecated)] // registryIds is deprecated but still how one asks for an account
        let out = self
            .client
            .get_authorization_token()
            .registry_ids(&self.registry_id)
            .send()
            .await
            .map_err(|e| call_failed("GetAuthorizationToken", &e))?;
        let data = out.authorization_data().first().ok_or_else(|| {
            Error::failed("ECR GetAuthorizationToken returned no authorization data")
        })?;
        let token = data.authorization_token().unwrap_or_default();
        redact::register(token);
        let (username, password) = decode_token(token)?;
        Ok(Authorization {
            username,
            password: Secret::new(password),
            proxy_endpoint: data.proxy_endpoint().unwrap_or_default().to_string(),
        })
    }
}

/// ECR's repository name rule: lower-case segments of letters and digits joined by `.`, `_`,
/// `-`, separated by `/`, 2 to 256 characters.
pub fn valid_repository_name(name: &str) -> bool {
    let seg_ok = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
            && s.starts_with(|c: char| c.is_ascii_alphanumeric())
            && s.ends_with(|c: char| c.is_ascii_alphanumeric())
    };
    (2..=256).contains(&name.len()) && name.split('/').all(seg_ok)
}

/// Manifest media types deckhand accepts when copying a manifest to a new tag.
const MANIFEST_TYPES: [&str; 4] = [
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
];

/// Decodes an ECR token (`base64("AWS:<password>")`) into user and password.
pub fn decode_token(token: &str) -> Result<(String, String)> {
    let bad = || {
        Error::failed("ECR returned an authorization token that is not base64 of `user:password`")
    };
    let raw = base64::engine::general_purpose::STANDARD
        .decode(token.trim())
        .map_err(|_| bad())?;
    let text = String::from_utf8(raw).map_err(|_| bad())?;
    let (user, password) = text.split_once(':').ok_or_else(bad)?;
    Ok((user.to_string(), password.to_string()))
}

/// The registry host from a proxy endpoint URL (`https://host` → `host`).
pub fn endpoint_host(proxy_endpoint: &str) -> String {
    let rest = proxy_endpoint
        .split_once("://")
        .map(|(_, r)| r)
        .unwrap_or(proxy_endpoint);
    rest.trim_end_matches('/').to_string()
}

fn to_repository(r: &aws_sdk_ecr::types::Repository) -> Repository {
    Repository {
        name: r.repository_name().unwrap_or_default().to_string(),
        uri: r.repository_uri().unwrap_or_default().to_string(),
        immutable: matches!(
            r.image_tag_mutability(),
            Some(ImageTagMutability::Immutable) | Some(ImageTagMutability::ImmutableWithExclusion)
        ),
    }
}

fn call_failed<E>(op: &str, e: &SdkError<E, HttpResponse>) -> Error
where
    E: std::error::Error + ProvideErrorMetadata + 'static,
{
    super::failure(&format!("ECR {op}"), e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_decode_to_user_and_password() {
        let token = base64::engine::general_purpose::STANDARD.encode("AWS:pa:ss");
        assert_eq!(
            decode_token(&token).unwrap(),
            ("AWS".into(), "pa:ss".into())
        );
        assert!(decode_token("not base64!").is_err());
        let no_colon = base64::engine::general_purpose::STANDARD.encode("nocolon");
        assert!(decode_token(&no_colon).is_err());
    }

    #[test]
    fn endpoint_host_strips_scheme() {
        assert_eq!(
            endpoint_host("https://1.dkr.ecr.x.amazonaws.com"),
            "1.dkr.ecr.x.amazonaws.com"
        );
        assert_eq!(endpoint_host("127.0.0.1:5000/"), "127.0.0.1:5000");
    }
}
