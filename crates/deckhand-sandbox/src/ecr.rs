//! The ECR API the sandbox serves: repositories, images and tags as its registry holds them,
//! and the login for that registry.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde_json::{json, Value};

use super::ecs::ApiError;
use crate::Time;

/// One image manifest in a repository.
#[derive(Debug, Clone)]
pub struct Image {
    pub digest: String,
    pub media_type: String,
    pub manifest: String,
    pub size: u64,
    pub pushed_at: Time,
}

/// An ECR repository and what its registry holds.
#[derive(Debug, Clone)]
pub struct Repository {
    pub name: String,
    pub arn: String,
    pub uri: String,
    pub immutable: bool,
    pub created_at: Time,
    pub images: BTreeMap<String, Image>,
    /// tag → digest
    pub tags: BTreeMap<String, String>,
}

impl Repository {
    fn to_json(&self, account: &str) -> Value {
        json!({
            "repositoryArn": self.arn,
            "registryId": account,
            "repositoryName": self.name,
            "repositoryUri": self.uri,
            "createdAt": self.created_at,
            "imageTagMutability": if self.immutable { "IMMUTABLE" } else { "MUTABLE" },
            "imageScanningConfiguration": {"scanOnPush": false},
            "encryptionConfiguration": {"encryptionType": "AES256"},
        })
    }

    fn tags_of(&self, digest: &str) -> Vec<String> {
        self.tags
            .iter()
            .filter(|(_, d)| *d == digest)
            .map(|(t, _)| t.clone())
            .collect()
    }

    /// Resolves an `imageIds` entry to a digest: by digest, by tag, or both (which must agree).
    fn resolve(&self, id: &Value) -> Result<String, (&'static str, String)> {
        let tag = id["imageTag"].as_str();
        let digest = id["imageDigest"].as_str();
        let by_tag = tag.and_then(|t| self.tags.get(t).cloned());
        match (tag, digest) {
            (Some(t), Some(d)) => match by_tag {
                Some(found) if found == d => Ok(found),
                Some(_) => Err((
                    "ImageTagDoesNotMatchDigest",
                    format!("Tag {t} does not match digest {d}"),
                )),
                None => Err(("ImageNotFound", format!("Requested image {t} not found"))),
            },
            (Some(t), None) => {
                by_tag.ok_or(("ImageNotFound", format!("Requested image {t} not found")))
            }
            (None, Some(d)) if self.images.contains_key(d) => Ok(d.to_string()),
            (None, Some(d)) => Err(("ImageNotFound", format!("Requested image {d} not found"))),
            (None, None) => Err((
                "MissingDigestAndTag",
                "imageId needs imageTag or imageDigest".into(),
            )),
        }
    }

    /// Stores a manifest under its digest and, if given, a tag. Enforces tag immutability.
    pub fn put(&mut self, image: Image, tag: Option<&str>) -> Result<(), ApiError> {
        if let Some(t) = tag {
            match self.tags.get(t) {
                Some(d) if *d == image.digest => {
                    return Err(ApiError::new(
                        "ImageAlreadyExistsException",
                        format!("Image with digest '{}' and tag '{t}' already exists in the repository with name '{}'", image.digest, self.name),
                    ))
                }
                Some(_) if self.immutable => {
                    return Err(ApiError::new(
                        "ImageTagAlreadyExistsException",
                        format!("The image tag '{t}' already exists in the '{}' repository and cannot be overwritten because the repository is immutable.", self.name),
                    ))
                }
                _ => {}
            }
        }
        let digest = image.digest.clone();
        self.images.entry(digest.clone()).or_insert(image);
        if let Some(t) = tag {
            self.tags.insert(t.to_string(), digest);
        }
        Ok(())
    }
}

/// The sandbox's registry: its address and login, and the repositories.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    pub repositories: BTreeMap<String, Repository>,
}

/// What ECR calls need to know about the sandbox around them.
pub struct Context<'a> {
    pub region: &'a str,
    pub account: &'a str,
    /// `127.0.0.1:PORT`: the registry host in repository URIs.
    pub host: &'a str,
    pub password: &'a str,
    pub now: Time,
    /// Whether the registry holds a blob (for PutImage's layer check).
    pub has_blob: &'a dyn Fn(&str) -> bool,
}

type Reply = Result<Value, ApiError>;

fn name(input: &Value) -> Result<&str, ApiError> {
    input["repositoryName"]
        .as_str()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::new("InvalidParameterException", "repositoryName is required"))
}

fn not_found(ctx: &Context, repo: &str) -> ApiError {
    ApiError::new(
        "RepositoryNotFoundException",
        format!(
            "The repository with name '{repo}' does not exist in the registry with id '{}'",
            ctx.account
        ),
    )
}

fn repo_mut<'a>(
    reg: &'a mut Registry,
    ctx: &Context,
    input: &Value,
) -> Result<&'a mut Repository, ApiError> {
    let n = name(input)?;
    reg.repositories.get_mut(n).ok_or_else(|| not_found(ctx, n))
}

/// The API reference's constraint on `repositoryName`: 2 to 256 characters matching
/// `(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*`, i.e. `/`-separated parts of
/// lower-case letters and digits, with single `.`, `_` or `-` between runs of them.
pub fn repository_name_ok(name: &str) -> bool {
    let part_ok = |part: &str| {
        let mut after_separator = true;
        for c in part.chars() {
            match c {
                'a'..='z' | '0'..='9' => after_separator = false,
                '.' | '_' | '-' if !after_separator => after_separator = true,
                _ => return false,
            }
        }
        !after_separator
    };
    (2..=256).contains(&name.len()) && name.split('/').all(part_ok)
}

/// Runs one ECR operation.
pub fn handle(reg: &mut Registry, ctx: &Context, op: &str, input: &Value) -> Reply {
    match op {
        "CreateRepository" => {
            let n = name(input)?.to_string();
            if !repository_name_ok(&n) {
                return Err(ApiError::new(
                    "InvalidParameterException",
                    format!(
                        "Invalid parameter at 'repositoryName' failed to satisfy constraint: '{n}'"
                    ),
                ));
            }
            if reg.repositories.contains_key(&n) {
                return Err(ApiError::new("RepositoryAlreadyExistsException", format!("The repository with name '{n}' already exists in the registry with id '{}'", ctx.account)));
            }
            let repo = Repository {
                arn: format!("arn:aws:ecr:{}:{}:repository/{n}", ctx.region, ctx.account),
                uri: format!("{}/{n}", ctx.host),
                immutable: input["imageTagMutability"].as_str() == Some("IMMUTABLE"),
                created_at: ctx.now,
                images: BTreeMap::new(),
                tags: BTreeMap::new(),
                name: n.clone(),
            };
            let out = json!({"repository": repo.to_json(ctx.account)});
            reg.repositories.insert(n, repo);
            Ok(out)
        }
        "DescribeRepositories" => {
            let repos: Vec<Value> = match input["repositoryNames"].as_array() {
                Some(names) => {
                    let mut out = Vec::new();
                    for n in names.iter().filter_map(|v| v.as_str()) {
                        out.push(
                            reg.repositories
                                .get(n)
                                .ok_or_else(|| not_found(ctx, n))?
                                .to_json(ctx.account),
                        );
                    }
                    out
                }
                None => reg
                    .repositories
                    .values()
                    .map(|r| r.to_json(ctx.account))
                    .collect(),
            };
            Ok(json!({"repositories": repos}))
        }
        "DeleteRepository" => {
            let n = name(input)?.to_string();
            let repo = reg.repositories.get(&n).ok_or_else(|| not_found(ctx, &n))?;
            if !repo.images.is_empty() && !input["force"].as_bool().unwrap_or(false) {
                return Err(ApiError::new("RepositoryNotEmptyException", format!("The repository with name '{n}' cannot be deleted because it still contains images")));
            }
            let out = json!({"repository": repo.to_json(ctx.account)});
            reg.repositories.remove(&n);
            Ok(out)
        }
        "PutImageTagMutability" => {
            let repo = repo_mut(reg, ctx, input)?;
            repo.immutable = input["imageTagMutability"].as_str() == Some("IMMUTABLE");
            Ok(
                json!({"registryId": ctx.account, "repositoryName": repo.name, "imageTagMutability": input["imageTagMutability"]}),
            )
        }
        "ListImages" => {
            let repo = repo_mut(reg, ctx, input)?;
            let mut ids: Vec<Value> = repo
                .tags
                .iter()
                .map(|(t, d)| json!({"imageTag": t, "imageDigest": d}))
                .collect();
            ids.extend(
                repo.images
                    .keys()
                    .filter(|d| repo.tags_of(d).is_empty())
                    .map(|d| json!({"imageDigest": d})),
            );
            Ok(json!({"imageIds": ids}))
        }
        "DescribeImages" => {
            let repo = repo_mut(reg, ctx, input)?;
            let digests: Vec<String> = match input["imageIds"].as_array() {
                Some(ids) => {
                    let mut out = Vec::new();
                    for id in ids {
                        let d = repo.resolve(id).map_err(|(_, msg)| {
                            ApiError::new("ImageNotFoundException", format!("{msg} in the repository with name '{}' in the registry with id '{}'", repo.name, ctx.account))
                        })?;
                        out.push(d);
                    }
                    out
                }
                None => repo.images.keys().cloned().collect(),
            };
            let details: Vec<Value> = digests
                .iter()
                .filter_map(|d| repo.images.get(d))
                .map(|i| {
                    json!({
                        "registryId": ctx.account,
                        "repositoryName": repo.name,
                        "imageDigest": i.digest,
                        "imageTags": repo.tags_of(&i.digest),
                        "imageSizeInBytes": i.size,
                        "imagePushedAt": i.pushed_at,
                        "imageManifestMediaType": i.media_type,
                    })
                })
                .collect();
            Ok(json!({"imageDetails": details}))
        }
        "BatchGetImage" => {
            let repo = repo_mut(reg, ctx, input)?;
            let accepted: Vec<&str> = input["acceptedMediaTypes"]
                .as_array()
                .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
                .unwrap_or_default();
            let mut images = Vec::new();
            let mut failures = Vec::new();
            for id in input["imageIds"].as_array().into_iter().flatten() {
                match repo.resolve(id) {
                    Ok(d) => {
                        let i = &repo.images[&d];
                        if !accepted.is_empty() && !accepted.contains(&i.media_type.as_str()) {
                            failures.push(json!({"imageId": id, "failureCode": "UnsupportedImageType", "failureReason": format!("manifest type {} not accepted", i.media_type)}));
                            continue;
                        }
                        let mut image_id = json!({"imageDigest": d});
                        if let Some(t) = id["imageTag"].as_str() {
                            image_id["imageTag"] = json!(t);
                        }
                        images.push(json!({"registryId": ctx.account, "repositoryName": repo.name, "imageId": image_id,
                                           "imageManifest": i.manifest, "imageManifestMediaType": i.media_type}));
                    }
                    Err((code, reason)) => failures
                        .push(json!({"imageId": id, "failureCode": code, "failureReason": reason})),
                }
            }
            Ok(json!({"images": images, "failures": failures}))
        }
        "BatchDeleteImage" => {
            let repo = repo_mut(reg, ctx, input)?;
            let mut deleted = Vec::new();
            let mut failures = Vec::new();
            for id in input["imageIds"].as_array().into_iter().flatten() {
                match repo.resolve(id) {
                    Ok(d) => {
                        match id["imageTag"].as_str() {
                            // deleting by tag removes the tag, and the image once untagged
                            Some(t) => {
                                repo.tags.remove(t);
                                if repo.tags_of(&d).is_empty() {
                                    repo.images.remove(&d);
                                }
                            }
                            None => {
                                repo.tags.retain(|_, v| *v != d);
                                repo.images.remove(&d);
                            }
                        }
                        deleted.push(json!({"imageDigest": d, "imageTag": id["imageTag"]}));
                    }
                    Err((code, reason)) => failures
                        .push(json!({"imageId": id, "failureCode": code, "failureReason": reason})),
                }
            }
            Ok(json!({"imageIds": deleted, "failures": failures}))
        }
        "PutImage" => {
            let manifest = input["imageManifest"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let parsed: Value = serde_json::from_str(&manifest).map_err(|e| {
                ApiError::new(
                    "InvalidParameterException",
                    format!("Invalid parameter at 'imageManifest': not JSON ({e})"),
                )
            })?;
            let media_type = input["imageManifestMediaType"]
                .as_str()
                .or(parsed["mediaType"].as_str())
                .unwrap_or("application/vnd.docker.distribution.manifest.v2+json")
                .to_string();
            let missing: Vec<String> = referenced_blobs(&parsed)
                .into_iter()
                .filter(|d| !(ctx.has_blob)(d))
                .collect();
            if !missing.is_empty() {
                return Err(ApiError::new(
                    "LayersNotFoundException",
                    format!(
                        "The following layers were not found: {}",
                        missing.join(", ")
                    ),
                ));
            }
            let digest = digest_of(manifest.as_bytes());
            if let Some(want) = input["imageDigest"].as_str() {
                if want != digest {
                    return Err(ApiError::new(
                        "ImageDigestDoesNotMatchException",
                        format!("The digest {want} does not match the manifest's {digest}"),
                    ));
                }
            }
            let tag = input["imageTag"].as_str();
            let repo = repo_mut(reg, ctx, input)?;
            let image = Image {
                size: manifest_size(&parsed),
                digest: digest.clone(),
                media_type: media_type.clone(),
                manifest: manifest.clone(),
                pushed_at: ctx.now,
            };
            repo.put(image, tag)?;
            let mut image_id = json!({"imageDigest": digest});
            if let Some(t) = tag {
                image_id["imageTag"] = json!(t);
            }
            Ok(
                json!({"image": {"registryId": ctx.account, "repositoryName": repo.name, "imageId": image_id,
                                "imageManifest": manifest, "imageManifestMediaType": media_type}}),
            )
        }
        "GetAuthorizationToken" => {
            let token =
                base64::engine::general_purpose::STANDARD.encode(format!("AWS:{}", ctx.password));
            Ok(json!({"authorizationData": [{
                "authorizationToken": token,
                "expiresAt": ctx.now + 12.0 * 3600.0,
                "proxyEndpoint": format!("http://{}", ctx.host),
            }]}))
        }
        _ => Err(ApiError::new(
            "UnknownOperationException",
            format!("the sandbox does not implement ECR {op}"),
        )),
    }
}

/// `sha256:<hex>` of `bytes`.
pub fn digest_of(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    digest_string(&Sha256::digest(bytes))
}

/// `sha256:<hex>` for a finished SHA-256 hash.
pub fn digest_string(hash: &[u8]) -> String {
    format!(
        "sha256:{}",
        hash.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

/// The blobs an image manifest points at: its config and layers (none for an index).
pub fn referenced_blobs(manifest: &Value) -> Vec<String> {
    let mut out: Vec<String> = manifest["config"]["digest"]
        .as_str()
        .map(str::to_string)
        .into_iter()
        .collect();
    out.extend(
        manifest["layers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|l| l["digest"].as_str().map(str::to_string)),
    );
    out
}

/// What ECR reports as an image's size: the sum of its layers.
pub fn manifest_size(manifest: &Value) -> u64 {
    manifest["layers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| l["size"].as_u64())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_names_follow_the_api_references_pattern() {
        for ok in ["team/web", "ab", "a-b.c_d/e2", "x/y/z"] {
            assert!(repository_name_ok(ok), "{ok}");
        }
        for bad in ["a", "Team/web", "a..b", "-a", "a-", "a//b", "/a", "a/"] {
            assert!(!repository_name_ok(bad), "{bad}");
        }
    }

    fn ctx<'a>(has_blob: &'a dyn Fn(&str) -> bool) -> Context<'a> {
        Context {
            region: "us-east-1",
            account: "123456789012",
            host: "127.0.0.1:1",
            password: "pw",
            now: 1.0,
            has_blob,
        }
    }

    #[test]
    fn put_image_tags_describe_and_immutability() {
        let yes = |_: &str| true;
        let c = ctx(&yes);
        let mut reg = Registry::default();
        handle(
            &mut reg,
            &c,
            "CreateRepository",
            &json!({"repositoryName": "app", "imageTagMutability": "IMMUTABLE"}),
        )
        .unwrap();
        let m = json!({"schemaVersion": 2, "config": {"digest": "sha256:c", "size": 1}, "layers": [{"digest": "sha256:l", "size": 10}]}).to_string();
        let put = handle(
            &mut reg,
            &c,
            "PutImage",
            &json!({"repositoryName": "app", "imageManifest": m, "imageTag": "v1"}),
        )
        .unwrap();
        let digest = put["image"]["imageId"]["imageDigest"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(digest, digest_of(m.as_bytes()));
        let d = handle(
            &mut reg,
            &c,
            "DescribeImages",
            &json!({"repositoryName": "app", "imageIds": [{"imageTag": "v1"}]}),
        )
        .unwrap();
        assert_eq!(d["imageDetails"][0]["imageDigest"], digest.as_str());
        assert_eq!(d["imageDetails"][0]["imageSizeInBytes"], 10);
        let again = handle(
            &mut reg,
            &c,
            "PutImage",
            &json!({"repositoryName": "app", "imageManifest": m, "imageTag": "v1"}),
        )
        .unwrap_err();
        assert_eq!(again.kind, "ImageAlreadyExistsException");
        let other = json!({"schemaVersion": 2, "layers": []}).to_string();
        let clash = handle(
            &mut reg,
            &c,
            "PutImage",
            &json!({"repositoryName": "app", "imageManifest": other, "imageTag": "v1"}),
        )
        .unwrap_err();
        assert_eq!(clash.kind, "ImageTagAlreadyExistsException");
        let missing = handle(
            &mut reg,
            &c,
            "DescribeImages",
            &json!({"repositoryName": "app", "imageIds": [{"imageTag": "nope"}]}),
        )
        .unwrap_err();
        assert_eq!(missing.kind, "ImageNotFoundException");
    }

    #[test]
    fn manifests_must_point_at_pushed_layers() {
        let no = |_: &str| false;
        let c = ctx(&no);
        let mut reg = Registry::default();
        handle(
            &mut reg,
            &c,
            "CreateRepository",
            &json!({"repositoryName": "app"}),
        )
        .unwrap();
        let m =
            json!({"schemaVersion": 2, "config": {"digest": "sha256:c"}, "layers": []}).to_string();
        let err = handle(
            &mut reg,
            &c,
            "PutImage",
            &json!({"repositoryName": "app", "imageManifest": m}),
        )
        .unwrap_err();
        assert_eq!(err.kind, "LayersNotFoundException");
    }

    #[test]
    fn unknown_repositories_and_bad_names() {
        let yes = |_: &str| true;
        let c = ctx(&yes);
        let mut reg = Registry::default();
        let err = handle(
            &mut reg,
            &c,
            "DescribeRepositories",
            &json!({"repositoryNames": ["x1"]}),
        )
        .unwrap_err();
        assert_eq!(err.kind, "RepositoryNotFoundException");
        let err = handle(
            &mut reg,
            &c,
            "CreateRepository",
            &json!({"repositoryName": "Bad"}),
        )
        .unwrap_err();
        assert_eq!(err.kind, "InvalidParameterException");
        let token = handle(&mut reg, &c, "GetAuthorizationToken", &json!({})).unwrap();
        assert_eq!(
            token["authorizationData"][0]["proxyEndpoint"],
            "http://127.0.0.1:1"
        );
    }
}
