//! The build-and-push pipeline (`deckhand push`, and `deckhand deploy` without --image): source
//! tree → image in ECR tagged with the commit SHA, skipping work that is already done.

use std::collections::HashMap;

use bollard::Docker;

use crate::aws::{self, ecr::Ecr};
use crate::error::{Error, Result};
use crate::git::{self, ShaSource};
use crate::image::reference::ImageRef;
use crate::image::{build, context::Context, engine, push as registry};
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
    // Masked from now on: secret-looking build args, and URL passwords in any.
    let args = s.build_args.iter().map(|(k, v)| (k.as_str(), v.as_str()));
    for value in crate::secrets::values_to_mask(args) {
        crate::redact::register(&value);
    }
    let context = Context::prepare(&s.context, s.file.as_deref())?;

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
    let (digest, skipped) = match decision {
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
            (digest, true)
        }
        Plan::Build => {
            let d = docker_or_connect(&mut docker).await?;
            let digest = build_and_push(
                r,
                d,
                context,
                s,
                &sha,
                Destination {
                    uri: &uri,
                    tags: &tags,
                    login: &login,
                },
            )
            .await?;
            (digest, false)
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

async fn docker_or_connect(docker: &mut Option<Docker>) -> Result<&Docker> {
    if docker.is_none() {
        *docker = Some(engine::connect().await?);
    }
    Ok(docker.as_ref().expect("just set"))
}

/// Where a build goes: the repository, its tags, the login.
struct Destination<'a> {
    uri: &'a str,
    tags: &'a [String],
    login: &'a registry::Login,
}

async fn build_and_push(
    r: &Reporter,
    docker: &Docker,
    context: Context,
    s: &Settings,
    sha: &str,
    to: Destination<'_>,
) -> Result<String> {
    let Destination { uri, tags, login } = to;
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
    };
    let (image_id, stats) = build::build(r, docker, context, &spec).await?;
    r.step(format!(
        "built {image_id} (context: {} files, {:.1} MiB)",
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
    match digest {
        Some(d) => Ok(d),
        None => repo_digest(docker, uri, &tags[0]).await,
    }
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

    #[test]
    fn dirty_trees_get_a_suffix() {
        assert_eq!(sha_tag("abc", false), "abc");
        assert_eq!(sha_tag("abc", true), "abc-dirty");
    }
}
