//! `deckhand init`: reads a live service and its task definition, and writes the deckhand.toml
//! and task definition file that deploy it from a project, so deckhand can take over a service
//! someone set up by hand.

use std::collections::HashMap;
use std::path::Path;

use serde::Serialize;

use crate::aws::{self, ecr, ecs};
use crate::deploy::scaffold::{self, Live};
use crate::deploy::{shape, watch};
use crate::error::{Error, Result};
use crate::image::reference::ImageRef;
use crate::report::Reporter;
use crate::settings::InitSettings;

/// The init result (stdout with `--output json`).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Initialized {
    /// `initialized`.
    pub result: String,
    pub cluster: String,
    pub service: String,
    /// The revision the files were made from.
    pub task_definition_arn: String,
    /// The files written.
    pub config_file: String,
    pub task_definition_file: String,
    /// The ECR repository the image comes from; `None` when no container's image is in ECR.
    pub repository: Option<String>,
    /// The containers that take the new image.
    pub containers: Vec<String>,
    pub warnings: Vec<String>,
    /// What to run next.
    pub next: String,
}

/// Reads the service, writes both files (nothing when anything fails first), says what next.
pub async fn run(r: &Reporter, region: Option<&str>, s: &InitSettings) -> Result<()> {
    let config = aws::config::load(region).await?;
    let client = ecs::Ecs::new(&config);
    let view = ecs::describe_service(&client, &s.cluster, &s.service).await?;
    if let Some(why) =
        scaffold::unsupported_controller(&view.name, &view.controller, "nothing was written")
    {
        return Err(Error::failed(why));
    }
    let revision = watch::short(&view.task_definition).to_string();
    r.step(format!(
        "service {} in {} runs {revision}",
        view.name, s.cluster
    ));
    let described = ecs::describe_task_definition(&client, &view.task_definition).await?;
    let td = scaffold::task_definition(described).map_err(|e| {
        Error::failed(format!(
            "{revision} cannot be written as a task definition file: {e}"
        ))
    })?;
    // The file keeps every value; the output shows none of the secret-looking ones.
    td.register_secrets();

    let in_ecr = ecr_repositories(r, &config, &td.containers()).await;
    let plan = scaffold::plan(&td.containers(), |image| {
        in_ecr.contains(&image.repository_uri())
    });
    let mut warnings = plan.notes.clone();
    let [config_path, td_path] = s.files();
    let unknown = shape::unknown_fields(&td.request());
    if !unknown.is_empty() {
        let listed: Vec<String> = unknown.iter().map(ToString::to_string).collect();
        warnings.push(format!(
            "{} has fields deckhand's ECS model does not know ({}): deploy it with \
             --allow-unknown-fields",
            td_path.display(),
            listed.join(", ")
        ));
    }
    let secrets = scaffold::plaintext_secrets(&td);
    if !secrets.is_empty() {
        let listed: Vec<String> = secrets.iter().map(|(c, n)| format!("{c}: {n}")).collect();
        warnings.push(format!(
            "{} holds plaintext values that look secret ({}): move them to the container's \
             `secrets` (valueFrom: Secrets Manager or SSM Parameter Store) before the file is \
             committed",
            td_path.display(),
            listed.join(", ")
        ));
    }

    let live = Live {
        cluster: s.cluster.clone(),
        service: view.name.clone(),
        region: Some(aws::config::region(&config)).filter(|r| !r.is_empty()),
        revision: revision.clone(),
    };
    let config_text = scaffold::config_text(&live, &plan, scaffold::TASK_DEFINITION_FILE);
    refuse_existing(s, &[&td_path, &config_path])?;
    write(s, &td_path, &scaffold::task_definition_text(&td))?;
    write(s, &config_path, &config_text)?;
    for w in &warnings {
        r.warn(w.clone());
    }

    let next = next_step(&s.dir, plan.repository.is_some());
    let result = Initialized {
        result: "initialized".into(),
        cluster: s.cluster.clone(),
        service: view.name.clone(),
        task_definition_arn: view.task_definition.clone(),
        config_file: config_path.display().to_string(),
        task_definition_file: td_path.display().to_string(),
        repository: plan.repository.clone(),
        containers: plan.containers.clone(),
        warnings,
        next,
    };
    r.result(&result, &text(&result, &revision));
    Ok(())
}

/// The repositories (`host/path`) among the containers' images that are in the account's ECR in
/// this region, by ECR's own answer (any host: a VPC endpoint, a local ECR). An ECR that cannot
/// be asked leaves the registry names (`<account>.dkr.ecr.<region>.amazonaws.com`).
async fn ecr_repositories(
    r: &Reporter,
    config: &aws_config::SdkConfig,
    containers: &[(String, String)],
) -> Vec<String> {
    let own = ecr::Ecr::new(config, "");
    let mut known: HashMap<String, bool> = HashMap::new();
    for (_, image) in containers {
        let Ok(reference) = ImageRef::parse(image) else {
            continue;
        };
        let uri = reference.repository_uri();
        let Some(host) = reference.registry() else {
            continue;
        };
        if known.contains_key(&uri) {
            continue;
        }
        // The repository deckhand.toml names is resolved in the credentials' own account and
        // region: an image is taken as in ECR only when that ECR holds it.
        let ecr_host = scaffold::is_ecr_host(host);
        let found = if !ecr::valid_repository_name(reference.repository()) {
            false
        } else {
            match own.repository(reference.repository()).await {
                Ok(found) => {
                    let ours = found.is_some_and(|repo| repo.uri == uri);
                    if !ours && ecr_host {
                        r.warn(format!(
                            "{uri} is not in this account's ECR in this region: deckhand.toml \
                             names no repository for it (deploy with --image, or run init with \
                             that account's credentials and region)"
                        ));
                    }
                    ours
                }
                Err(e) => {
                    let taken = if ecr_host {
                        "taken as so by its name"
                    } else {
                        "taken as not"
                    };
                    r.warn(format!(
                        "cannot ask ECR whether {uri} is one of its repositories ({}); {taken}",
                        e.message
                    ));
                    ecr_host
                }
            }
        };
        known.insert(uri, found);
    }
    known
        .into_iter()
        .filter(|(_, found)| *found)
        .map(|(uri, _)| uri)
        .collect()
}

/// Without `--force`, neither file may exist, checked again before either is written (settings
/// checked it before any AWS call).
fn refuse_existing(s: &InitSettings, paths: &[&Path]) -> Result<()> {
    match paths.iter().find(|p| p.exists()) {
        Some(path) if !s.force => Err(Error::usage(format!(
            "{} already exists: nothing was written. Pass --force to overwrite",
            path.display()
        ))),
        _ => Ok(()),
    }
}

/// Writes one of the files, creating the directory.
fn write(s: &InitSettings, path: &Path, text: &str) -> Result<()> {
    std::fs::create_dir_all(&s.dir)
        .and_then(|()| std::fs::write(path, text))
        .map_err(|e| Error::failed(format!("cannot write {}: {e}", path.display())))
}

/// The command that shows, before anything changes, what a deploy from the files would do.
fn next_step(dir: &Path, has_repository: bool) -> String {
    let deploy = if has_repository {
        "deckhand deploy --dry-run"
    } else {
        "deckhand deploy --dry-run --image IMAGE"
    };
    if dir == Path::new(".") {
        deploy.to_string()
    } else {
        let dir = dir.display().to_string();
        let quoted = shlex::try_quote(&dir).unwrap_or(std::borrow::Cow::Borrowed(&dir));
        format!("cd {quoted} && {deploy}")
    }
}

/// The result for people.
fn text(i: &Initialized, revision: &str) -> String {
    let containers = if i.containers.is_empty() {
        "no container takes the image yet: set `containers` in deckhand.toml".to_string()
    } else {
        format!(
            "the image goes to {}{}",
            i.containers.join(", "),
            i.repository
                .as_deref()
                .map(|r| format!(" (ECR repository {r})"))
                .unwrap_or_default()
        )
    };
    format!(
        "wrote {} and {} from service {} ({revision})\n{containers}\nnext: {}",
        i.config_file, i.task_definition_file, i.service, i.next
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_step_runs_where_the_files_are() {
        for (dir, repository, want) in [
            (".", true, "deckhand deploy --dry-run"),
            (".", false, "deckhand deploy --dry-run --image IMAGE"),
            (
                "deploy/web",
                true,
                "cd deploy/web && deckhand deploy --dry-run",
            ),
            ("my dir", true, "cd 'my dir' && deckhand deploy --dry-run"),
        ] {
            assert_eq!(next_step(Path::new(dir), repository), want);
        }
    }
}
