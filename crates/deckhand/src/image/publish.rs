//! The build-and-push pipeline (`deckhand push`, and `deckhand deploy` without --image): source
//! tree → image in ECR tagged with the commit SHA, skipping work that is already done.

use std::collections::HashMap;

use bollard::Docker;

use crate::aws::{self, ecr::Ecr};
use crate::error::{Error, Result};
use crate::git::{self, ShaSource};
use crate::image::reference::ImageRef;
use crate::image::{build, context::Context, dispatch, dockerfile, engine, push as registry};
use crate::output::PushOutcome;
use crate::report::Reporter;
use crate::settings::PushSettings as Settings;

/// What to do about the SHA tag, given what the registry already has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Nothing there (or `--force`, or a dirty tree): build and push.
    Build,
    /// Already pushed: reuse this digest.
    Skip { digest: String, reason: SkipReason },
    /// A dirty build's tag exists in an immutable repository: the new content cannot be
    /// pushed under it, and reusing the old one would report a stale image.
    RefuseDirty { digest: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    AlreadyPushed,
    /// `--force` was asked, but the repository's tags are immutable: a rebuild could only fail.
    ImmutableDespiteForce,
}

/// Decides between building and skipping (pure). A `-dirty` tag names uncommitted content,
/// which may differ from what was pushed under it before, so it is never reused.
pub fn plan(existing: Option<String>, force: bool, immutable: bool, dirty: bool) -> Plan {
    match existing {
        None => Plan::Build,
        Some(digest) if dirty && immutable => Plan::RefuseDirty { digest },
        Some(_) if dirty => Plan::Build,
        Some(digest) if !force => Plan::Skip {
            digest,
            reason: SkipReason::AlreadyPushed,
        },
        Some(digest) if immutable => Plan::Skip {
            digest,
            reason: SkipReason::ImmutableDespiteForce,
        },
        Some(_) => Plan::Build,
    }
}

/// The tag an image gets: the SHA, or `<sha>-dirty` for an uncommitted work tree.
pub fn sha_tag(sha: &str, dirty: bool) -> String {
    if dirty {
        format!("{sha}-dirty")
    } else {
        sha.to_string()
    }
}

/// Runs the push pipeline.
pub async fn run(r: &Reporter, region: Option<&str>, s: &Settings) -> Result<PushOutcome> {
    run_with_cache(r, region, s, &[]).await
}

/// Runs the push pipeline for a deploy: `running` are the images the services run now, which
/// a build of their repository imports cache from.
pub async fn run_with_cache(
    r: &Reporter,
    region: Option<&str>,
    s: &Settings,
    running: &[String],
) -> Result<PushOutcome> {
    // Masked from now on: secret-looking build args, and URL passwords in any.
    let args = s.build_args.iter().map(|(k, v)| (k.as_str(), v.as_str()));
    for value in crate::secrets::values_to_mask(args) {
        crate::redact::register(&value);
    }
    let context = Context::prepare(&s.context, s.file.as_deref())?;
    let prepared = prepare(s, &context)?;

    r.stage("commit");
    let env = |k: &str| std::env::var(k).ok();
    let (sha, dirty) = resolve_sha(s, &env).await?;
    let tag = sha_tag(&sha, dirty);
    r.step(format!(
        "commit {sha}{}",
        if dirty {
            " (uncommitted changes: tagging -dirty)"
        } else {
            ""
        }
    ));

    r.stage("ECR");
    let config = aws::config::load(region).await?;
    let account = aws::sts::account_id(&config).await?;
    let ecr = Ecr::new(&config, &account);
    let (repository, exists) = match ecr.repository(&s.repository).await? {
        Some(r) => (r, true),
        None if s.create_repository && s.dry_run => {
            r.step(format!(
                "dry run: the ECR repository {} would be created",
                s.repository
            ));
            let planned = aws::ecr::Repository {
                name: s.repository.clone(),
                uri: String::new(),
                immutable: false,
            };
            (planned, false)
        }
        None if s.create_repository => {
            r.step(format!("creating ECR repository {}", s.repository));
            (ecr.create_repository(&s.repository).await?, true)
        }
        None => {
            return Err(Error::failed(format!(
            "the ECR repository {:?} does not exist in account {account} ({}). Create it, or pass \
                 --create-repository to let deckhand create it.",
            s.repository,
            aws::config::region(&config)
        )))
        }
    };
    let auth = ecr.authorization().await?;
    let host = s
        .registry
        .clone()
        .unwrap_or_else(|| aws::ecr::endpoint_host(&auth.proxy_endpoint));
    let uri = format!("{host}/{}", repository.name);
    let login = registry::Login {
        username: auth.username.clone(),
        password: auth.password.clone(),
        server: host.clone(),
    };
    r.step(format!(
        "repository {uri}{}",
        if repository.immutable {
            " (immutable tags)"
        } else {
            ""
        }
    ));

    // Ask the place the image would be pushed to: ECR, or the overriding registry.
    let mut docker: Option<Docker> = None;
    let existing = match &s.registry {
        // A dry run past a repository that does not exist yet: nothing is in it.
        None if !exists => None,
        None => ecr.image_digest(&repository.name, &tag).await?,
        Some(_) => {
            let d = docker_or_connect(&mut docker).await?;
            registry::remote_digest(d, &uri, &tag, &login).await?
        }
    };

    let mut tags = vec![tag.clone()];
    tags.extend(s.extra_tags.iter().filter(|t| **t != tag).cloned());

    let own = existing.is_some().then(|| tag.clone());
    let decision = plan(existing, s.force, repository.immutable, dirty);
    if let Plan::RefuseDirty { digest } = &decision {
        return Err(Error::failed(format!(
            "{uri}:{tag} already exists ({digest}) and the repository's tags are immutable, so \
             this build of uncommitted changes cannot be pushed under that tag. Commit the \
             changes and push the new commit."
        )));
    }
    if s.dry_run {
        return Ok(dry_run_outcome(r, decision, uri, tag, tags, sha));
    }
    let (digest, skipped, architecture) = match decision {
        Plan::RefuseDirty { .. } => unreachable!("refused above"),
        Plan::Skip { digest, reason } => {
            match reason {
                SkipReason::AlreadyPushed => r.step(format!(
                    "{uri}:{tag} is already pushed ({digest}): skipping build and push (--force rebuilds)"
                )),
                SkipReason::ImmutableDespiteForce => r.warn(format!(
                    "{uri}:{tag} is already pushed ({digest}) and the repository's tags are immutable: \
                     --force cannot replace it, so nothing is rebuilt"
                )),
            }
            if tags.len() > 1 {
                r.stage(format!("tag {}", tags[1..].join(", ")));
                match &s.registry {
                    None => retag_in_ecr(r, &ecr, &repository.name, &digest, &tags[1..]).await?,
                    Some(_) => {
                        let d = docker_or_connect(&mut docker).await?;
                        retag_in_registry(r, d, &uri, &tag, &digest, &tags[1..], &login).await?
                    }
                }
            }
            // The image is not looked at: its architecture is known only for one built here.
            (digest, true, None)
        }
        Plan::Build => {
            let d = docker_or_connect(&mut docker).await?;
            let recent = if s.no_cache {
                Vec::new()
            } else {
                recent_sha_tags(
                    s,
                    &ecr,
                    d,
                    Latest {
                        repository: &repository.name,
                        uri: &uri,
                        sha: &sha,
                        tag: &tag,
                        login: &login,
                    },
                )
                .await
            };
            let running = same_repository(&uri, running);
            let cache = cache_sources(
                &uri,
                own.as_deref(),
                &running,
                &recent,
                &s.cache_from,
                s.no_cache,
            );
            let (digest, architecture) = build_and_push(
                r,
                d,
                context,
                s,
                &sha,
                Destination {
                    uri: &uri,
                    tags: &tags,
                    login: &login,
                    cache: &cache,
                },
                prepared,
            )
            .await?;
            (digest, false, architecture)
        }
    };

    Ok(PushOutcome {
        image: format!("{uri}:{tag}"),
        pinned: format!("{uri}@{digest}"),
        digest,
        tags,
        skipped,
        repository_uri: uri,
        sha,
        architecture,
    })
}

/// What a push would produce, without building, pushing or tagging: the pinned digest when the
/// SHA is already pushed, else the tag the image would get.
fn dry_run_outcome(
    r: &Reporter,
    decision: Plan,
    uri: String,
    tag: String,
    tags: Vec<String>,
    sha: String,
) -> PushOutcome {
    let image = format!("{uri}:{tag}");
    let (digest, pinned, skipped) = match decision {
        Plan::Skip { digest, .. } | Plan::RefuseDirty { digest } => {
            r.step(format!(
                "dry run: {image} is already pushed ({digest}): nothing would be built"
            ));
            (digest.clone(), format!("{uri}@{digest}"), true)
        }
        Plan::Build => {
            r.step(format!("dry run: {image} would be built and pushed"));
            (String::new(), image.clone(), false)
        }
    };
    PushOutcome {
        image,
        digest,
        pinned,
        tags,
        skipped,
        repository_uri: uri,
        sha,
        architecture: None,
    }
}

async fn resolve_sha(
    s: &Settings,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<(String, bool)> {
    match git::pick_sha(s.sha.as_deref(), env) {
        Some((sha, source)) => Ok((git::validate_sha(&sha, &source)?, false)),
        None => {
            let (sha, dirty) = git::head_of(&s.context).await?;
            let sha = git::validate_sha(&sha, &ShaSource::Git)?;
            if dirty && !s.allow_dirty {
                return Err(Error::failed(format!(
                    "the work tree at {} has uncommitted changes, so an image tagged {sha} would not \
                     match that commit. Commit or stash them, or pass --allow-dirty to push it as \
                     {sha}-dirty.",
                    s.context.display()
                )));
            }
            Ok((sha, dirty))
        }
    }
}

/// Reads what the build needs before anything changes: the Dockerfile's BuildKit features
/// (for a clear error on the classic builder) and the `--secret` values, masked from here on.
fn prepare(s: &Settings, context: &Context) -> Result<dispatch::Prepared> {
    let uses = std::fs::read(&context.dockerfile_file)
        .map(|bytes| dockerfile::buildkit_only(&String::from_utf8_lossy(&bytes)))
        .unwrap_or_default();
    if s.builder == crate::image::options::BuilderChoice::Legacy {
        crate::image::builder::refuse_for_legacy(&uses, !s.secrets.is_empty())?;
    }
    let env = |k: &str| std::env::var(k).ok();
    let mut secrets = HashMap::new();
    for secret in &s.secrets {
        let bytes = secret.read(&env).map_err(Error::usage)?;
        let value = String::from_utf8(bytes).map_err(|_| {
            Error::usage(format!(
                "the build secret {:?} is not UTF-8 text; deckhand serves text secrets only",
                secret.id
            ))
        })?;
        let value = crate::redact::Secret::new(value);
        crate::redact::register(value.expose().trim());
        crate::redact::register(value.expose());
        secrets.insert(secret.id.clone(), value);
    }
    Ok(dispatch::Prepared {
        uses,
        secrets,
        builder: s.builder,
    })
}

/// Where the latest SHA-tagged image is looked for.
struct Latest<'a> {
    repository: &'a str,
    uri: &'a str,
    sha: &'a str,
    tag: &'a str,
    login: &'a registry::Login,
}

/// How many of the repository's latest SHA-tagged images a build imports cache from. More than
/// one, because the engine's inline cache metadata of a build whose steps all came from an
/// imported cache no longer links their layers: with one source, every other build on a fresh
/// machine would run its slow steps again.
const RECENT_CACHE_IMAGES: usize = 3;

/// How many commits back a registry without ECR's push times is searched for cache images.
const ANCESTORS_SEARCHED: usize = 10;

/// The repository's latest SHA tags other than this build's: from ECR's push times, or (for an
/// overriding registry, which has none) the nearest of the commit's ancestors that were pushed.
/// A failed lookup only means a colder build.
async fn recent_sha_tags(s: &Settings, ecr: &Ecr, docker: &Docker, at: Latest<'_>) -> Vec<String> {
    match &s.registry {
        None => ecr
            .recent_sha_tags(at.repository, at.tag, RECENT_CACHE_IMAGES)
            .await
            .unwrap_or_default(),
        Some(_) => {
            let mut found = Vec::new();
            for ancestor in git::ancestors(&s.context, at.sha, ANCESTORS_SEARCHED).await {
                if found.len() == RECENT_CACHE_IMAGES {
                    break;
                }
                if let Ok(Some(_)) =
                    registry::remote_digest(docker, at.uri, &ancestor, at.login).await
                {
                    found.push(ancestor);
                }
            }
            found
        }
    }
}

/// Of the images the services run, those from the repository `uri` (pure).
pub fn same_repository(uri: &str, images: &[String]) -> Vec<String> {
    images
        .iter()
        .filter(|i| ImageRef::parse(i).is_ok_and(|r| r.repository_uri() == uri))
        .cloned()
        .collect()
}

/// The images a build imports cache from (pure): this SHA's own earlier image when rebuilt,
/// the images the services run now, the repository's latest SHA tags, then `--cache-from`;
/// none with `--no-cache`.
pub fn cache_sources(
    uri: &str,
    own: Option<&str>,
    running: &[String],
    recent: &[String],
    extra: &[String],
    no_cache: bool,
) -> Vec<String> {
    if no_cache {
        return Vec::new();
    }
    let mut out: Vec<String> = Vec::new();
    let tagged = |t: &str| format!("{uri}:{t}");
    let ours = own
        .map(tagged)
        .into_iter()
        .chain(running.iter().cloned())
        .chain(recent.iter().map(|t| tagged(t)));
    for source in ours.chain(extra.iter().cloned()) {
        if !out.contains(&source) {
            out.push(source);
        }
    }
    out
}

async fn docker_or_connect(docker: &mut Option<Docker>) -> Result<&Docker> {
    if docker.is_none() {
        *docker = Some(engine::connect().await?);
    }
    Ok(docker.as_ref().expect("just set"))
}

/// Where a build goes (the repository, its tags, the login) and the images it may take cache
/// from.
struct Destination<'a> {
    uri: &'a str,
    tags: &'a [String],
    login: &'a registry::Login,
    cache: &'a [String],
}

async fn build_and_push(
    r: &Reporter,
    docker: &Docker,
    context: Context,
    s: &Settings,
    sha: &str,
    to: Destination<'_>,
    prepared: dispatch::Prepared,
) -> Result<(String, Option<String>)> {
    let Destination {
        uri,
        tags,
        login,
        cache,
    } = to;
    r.stage("build");
    if let Some(file) = &context.ignore_file {
        r.step(format!("ignore rules from {}", file.display()));
    }
    let mut labels = HashMap::from([(
        "org.opencontainers.image.revision".to_string(),
        sha.to_string(),
    )]);
    let env = |k: &str| std::env::var(k).ok();
    if let Some(source) = git::source_url(&s.context, env).await {
        labels.insert("org.opencontainers.image.source".to_string(), source);
    }
    let spec = build::BuildSpec {
        tags: tags.iter().map(|t| format!("{uri}:{t}")).collect(),
        build_args: s.build_args.clone(),
        target: s.target.clone(),
        labels,
        platform: s.platform.as_ref().map(|p| p.to_string()),
        cache_from: cache.to_vec(),
        no_cache: s.no_cache,
        network: s.network.map(|n| n.mode().to_string()),
    };
    let (image_id, stats) = dispatch::run(r, docker, context, &spec, prepared, login).await?;
    let architecture = docker
        .inspect_image(&image_id)
        .await
        .ok()
        .and_then(|i| i.architecture);
    r.step(format!(
        "built {image_id} as {} (context: {} files, {:.1} MiB)",
        spec.tags.join(", "),
        stats.files,
        stats.bytes as f64 / (1024.0 * 1024.0)
    ));

    r.stage("push");
    let mut digest = None;
    for t in tags {
        let d = registry::push(r, docker, uri, t, login).await?;
        if digest.is_none() {
            digest = d;
        }
    }
    let digest = match digest {
        Some(d) => d,
        None => repo_digest(docker, uri, &tags[0]).await?,
    };
    Ok((digest, architecture))
}

/// The digest the engine recorded for `uri` after a push (when the push stream did not say).
async fn repo_digest(docker: &Docker, uri: &str, tag: &str) -> Result<String> {
    let image = docker
        .inspect_image(&format!("{uri}:{tag}"))
        .await
        .map_err(|e| Error::failed(format!("could not read the pushed image's digest: {e}")))?;
    image
        .repo_digests
        .unwrap_or_default()
        .iter()
        .find_map(|r| {
            let r = ImageRef::parse(r).ok()?;
            (r.repository_uri() == uri).then(|| r.digest().map(str::to_string))?
        })
        .ok_or_else(|| Error::failed(format!("the registry reported no digest for {uri}:{tag}")))
}

/// Points extra tags at an image already in ECR, through ECR's API (no pull, no push); tags
/// that already point at it are left alone.
async fn retag_in_ecr(
    r: &Reporter,
    ecr: &Ecr,
    repository: &str,
    digest: &str,
    extra: &[String],
) -> Result<()> {
    let current = ecr.tags_of(repository, digest).await?;
    for t in extra {
        if current.contains(t) {
            r.step(format!("{t} already points at {digest}"));
        } else {
            ecr.add_tag(repository, digest, t).await?;
            r.step(format!("tagged {t}"));
        }
    }
    Ok(())
}

/// Points extra tags at an image already in an overriding registry: pull it, tag, push the
/// tags that do not already point at it.
async fn retag_in_registry(
    r: &Reporter,
    docker: &Docker,
    uri: &str,
    tag: &str,
    digest: &str,
    extra: &[String],
    login: &registry::Login,
) -> Result<()> {
    let source = format!("{uri}:{tag}");
    let mut pulled = false;
    for t in extra {
        if registry::remote_digest(docker, uri, t, login)
            .await?
            .as_deref()
            == Some(digest)
        {
            r.step(format!("{t} already points at {digest}"));
            continue;
        }
        if !pulled {
            registry::pull(docker, &source, login).await?;
            pulled = true;
        }
        build::tag(docker, &source, &format!("{uri}:{t}")).await?;
        registry::push(r, docker, uri, t, login).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_skips_what_is_pushed_and_never_fights_immutability() {
        let d = || Some("sha256:x".to_string());
        let skip = |reason| Plan::Skip {
            digest: "sha256:x".into(),
            reason,
        };
        // (existing, force, immutable, dirty) → plan
        let cases = [
            (None, false, false, false, Plan::Build),
            (None, true, true, true, Plan::Build),
            (d(), false, false, false, skip(SkipReason::AlreadyPushed)),
            (d(), false, true, false, skip(SkipReason::AlreadyPushed)),
            (d(), true, false, false, Plan::Build),
            (
                d(),
                true,
                true,
                false,
                skip(SkipReason::ImmutableDespiteForce),
            ),
            // a dirty tree's content may differ from the last dirty push: never reuse it
            (d(), false, false, true, Plan::Build),
            (
                d(),
                false,
                true,
                true,
                Plan::RefuseDirty {
                    digest: "sha256:x".into(),
                },
            ),
        ];
        for (existing, force, immutable, dirty, want) in cases {
            assert_eq!(
                plan(existing.clone(), force, immutable, dirty),
                want,
                "existing={existing:?} force={force} immutable={immutable} dirty={dirty}"
            );
        }
    }

    /// An image of r.example/app by digest.
    fn pinned() -> String {
        format!("r.example/app@sha256:{}", "ab".repeat(32))
    }

    #[test]
    fn cache_comes_from_the_own_tag_the_latest_shas_and_cache_from_once_each() {
        let uri = "r.example/app";
        let extra = vec![
            "r.example/app:main".to_string(),
            "r.example/app:old".to_string(),
        ];
        let recent = vec!["old".to_string(), "older".to_string()];
        let running = vec![pinned()];
        assert_eq!(
            cache_sources(uri, Some("new"), &running, &recent, &extra, false),
            vec![
                "r.example/app:new",
                pinned().as_str(),
                "r.example/app:old",
                "r.example/app:older",
                "r.example/app:main"
            ]
        );
        assert_eq!(
            cache_sources(uri, None, &[], &[], &[], false),
            Vec::<String>::new()
        );
        assert_eq!(
            cache_sources(uri, None, &[], &recent[..1], &[], false),
            vec!["r.example/app:old"]
        );
        assert!(cache_sources(uri, Some("new"), &running, &recent, &extra, true).is_empty());
    }

    #[test]
    fn only_running_images_of_the_same_repository_serve_as_cache() {
        let images = vec![
            pinned(),
            "r.example/app:1".to_string(),
            "r.example/sidecar:2".to_string(),
            "busybox:1".to_string(),
            "not an image".to_string(),
        ];
        assert_eq!(
            same_repository("r.example/app", &images),
            vec![pinned(), "r.example/app:1".to_string()]
        );
    }

    #[test]
    fn dirty_trees_get_a_suffix() {
        assert_eq!(sha_tag("abc", false), "abc");
        assert_eq!(sha_tag("abc", true), "abc-dirty");
    }
}
