//! `deckhand run`: a one-off task (a migration, a console command) run beside a service or from
//! a task definition, its log shown as it arrives, its containers' exit codes as the verdict.

use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use crate::aws::{self, ecs};
use crate::deploy::oneoff::{self, ContainerExit, Ended};
use crate::deploy::{history, overrides, taskdef, watch};
use crate::error::{Error, Result};
use crate::report::Reporter;
use crate::settings::RunSettings;
use crate::signals::Interrupts;

/// How long, after deckhand stops the task, it waits to see it STOPPED.
const SETTLE: Duration = Duration::from_secs(60);

/// The result object (stdout with `--output json`).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Ran {
    /// succeeded | failed
    pub result: String,
    /// Why it failed (empty when it succeeded).
    pub reason: String,
    pub cluster: String,
    /// The service it ran beside, if any.
    pub service: Option<String>,
    pub task_arn: String,
    pub task_definition_arn: String,
    /// `--image`, when the task ran with one.
    pub image: Option<String>,
    /// ECS's stop code and reason (EssentialContainerExited, UserInitiated…).
    pub stop_code: String,
    pub stopped_reason: String,
    /// How each container ended, in the order ECS lists them.
    pub containers: Vec<ContainerExit>,
}

/// Runs the task: 0 when every essential container exited 0; 1 when one did not, when it
/// could not start, ran past `--timeout` or was interrupted (it is stopped then); 2 for a
/// task that cannot be run as asked, before anything is registered or started.
pub async fn run(r: &Reporter, region: Option<&str>, s: &RunSettings) -> Result<()> {
    // Listening from the start: a cancelled job stops the task it started.
    let mut interrupts = Interrupts::new();
    let config = aws::config::load(region).await?;
    let client = ecs::Ecs::new(&config);
    let (placement, reference) = match &s.service {
        Some(service) => {
            let view = ecs::describe_service(&client, &s.cluster, service).await?;
            let reference = s
                .task_definition
                .clone()
                .unwrap_or_else(|| view.task_definition.clone());
            (view.placement, reference)
        }
        None => (
            ecs::Placement::default(),
            s.task_definition.clone().expect("settings name one"),
        ),
    };
    let described = ecs::describe_task_definition(&client, &reference).await?;
    let source_arn = described["taskDefinition"]["taskDefinitionArn"]
        .as_str()
        .unwrap_or(&reference)
        .to_string();
    let source = taskdef::from_value(described)
        .map_err(|e| Error::failed(format!("task definition {reference}: {e}")))?;
    source.register_secrets();
    let body = Value::Object(source.body.clone());
    if s.service.is_none() {
        if let Some(why) = overrides::needs_network(&body) {
            return Err(Error::usage(why));
        }
    }
    let family = source.family().to_string();
    let containers: Vec<(String, bool)> = oneoff_containers(&body);

    let (new, got_image) = match &s.image {
        Some(image) => {
            let (mut new, chosen) = with_image(&source, &s.containers, image)?;
            history::mark_one_off(&mut new, "run");
            (Some(new), chosen)
        }
        None => {
            if let Some(unknown) = s
                .containers
                .iter()
                .find(|c| !containers.iter().any(|(n, _)| n == *c))
            {
                return Err(Error::usage(format!(
                    "--container {unknown}: {family} has no such container; it has: {}",
                    names(&containers)
                )));
            }
            (None, Vec::new())
        }
    };
    let main = overrides::main_container(&containers, &s.containers, &got_image)
        .ok_or_else(|| Error::usage(format!("the task definition {family} has no containers")))?;
    let planned =
        overrides::plan(&containers, &main, s.command.as_deref(), &s.env).map_err(Error::usage)?;
    let secrets =
        crate::secrets::values_to_mask(s.env.iter().map(|v| (v.key.as_str(), v.value.as_str())));
    secrets.iter().for_each(|v| crate::redact::register(v));

    let command = s
        .command
        .as_ref()
        .map(|c| shlex::try_join(c.iter().map(String::as_str)).unwrap_or_else(|_| c.join(" ")));
    r.stage(format!(
        "run: {family} {main}: {}",
        command.as_deref().unwrap_or("(its own command)")
    ));
    for o in planned.iter().filter(|o| !o.environment.is_empty()) {
        let set: Vec<&str> = o.environment.iter().map(|(k, _)| k.as_str()).collect();
        r.step(format!("{}: setting {}", o.container, set.join(", ")));
    }
    let registered = match &new {
        Some(new) => {
            let registered = ecs::register_task_definition(&client, &new.request()).await?;
            r.step(format!(
                "registered {} with the image on {} (tagged {}: never deployed, never a \
                 rollback target)",
                watch::short(&registered.arn),
                got_image.join(", "),
                history::ONE_OFF_TAG
            ));
            Some(registered.arn)
        }
        None => None,
    };
    let task_definition = registered.clone().unwrap_or(source_arn);
    if interrupts.arrived() {
        retire(r, &client, registered.as_deref()).await;
        return Err(Error::failed(
            "interrupted before the task was started: nothing was run",
        ));
    }
    let started = ecs::run_task(&client, &s.cluster, &task_definition, &planned, &placement).await;
    let arn = match started {
        Ok(arn) => arn,
        Err(e) => {
            retire(r, &client, registered.as_deref()).await;
            return Err(e);
        }
    };
    let id = watch::short(&arn).to_string();
    r.step(format!("task {id} started"));

    let logs = aws_sdk_cloudwatchlogs::Client::new(&config);
    let body = new.as_ref().map_or(body, |n| Value::Object(n.body.clone()));
    let follow = oneoff::Follow {
        reporter: r,
        client: &client,
        logs: &logs,
        cluster: &s.cluster,
        label: &family,
        what: "one-off task",
        poll: s.poll,
        timeout: s.timeout,
        settle: SETTLE,
    };
    let ended = oneoff::follow(&follow, &body, &arn, &mut interrupts).await;
    retire(r, &client, registered.as_deref()).await;

    let mut ran = Ran {
        result: "failed".into(),
        reason: String::new(),
        cluster: s.cluster.clone(),
        service: s.service.clone(),
        task_arn: arn.clone(),
        task_definition_arn: task_definition,
        image: s.image.clone(),
        stop_code: String::new(),
        stopped_reason: String::new(),
        containers: Vec::new(),
    };
    let stopped = match &ended {
        Ended::Stopped(t) => Some(t),
        Ended::Cut { last, .. } => last.as_ref(),
    };
    if let Some(t) = stopped {
        ran.stop_code = t.stop_code.clone();
        ran.stopped_reason = t.reason.clone();
        ran.containers = oneoff::exits(&body, t);
    }
    ran.reason = match &ended {
        Ended::Stopped(t) => match oneoff::outcome(&body, t) {
            Ok(()) => String::new(),
            Err(why) => why,
        },
        Ended::Cut { cut, stopping, .. } => format!("the task {cut}; {stopping}"),
    };
    if ran.reason.is_empty() {
        ran.result = "succeeded".into();
        r.verdict(format!(
            "succeeded: task {id} of {family}: every essential container exited 0"
        ));
    } else {
        r.verdict(format!("failed: task {id} of {family}: {}", ran.reason));
    }
    r.result(&ran, &text(&ran));
    if ran.result == "succeeded" {
        Ok(())
    } else {
        Err(Error::failed(format!(
            "the one-off task {id} ({family}) failed: {}",
            ran.reason
        )))
    }
}

/// (name, essential) of each container of task definition `body`.
fn oneoff_containers(body: &Value) -> Vec<(String, bool)> {
    crate::deploy::tasklogs::containers(body)
        .into_iter()
        .map(|c| (c.name, c.essential))
        .collect()
}

fn names(containers: &[(String, bool)]) -> String {
    containers
        .iter()
        .map(|(n, _)| n.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// `source` with `image` on the named containers, else (as deploy chooses) those whose image
/// is from the same repository, else its only container; none: exit 2.
fn with_image(
    source: &taskdef::TaskDef,
    named: &[String],
    image: &str,
) -> Result<(taskdef::TaskDef, Vec<String>)> {
    match source.with_new_image(named, image, None) {
        Ok(done) => Ok(done),
        Err(_) if named.is_empty() && source.containers().len() == 1 => {
            let only = vec![source.containers()[0].0.clone()];
            source
                .with_new_image(&only, image, None)
                .map_err(Error::usage)
        }
        Err(why) => Err(Error::usage(why)),
    }
}

/// Deregisters the revision registered for this task, if one was.
async fn retire(r: &Reporter, client: &ecs::Ecs, registered: Option<&str>) {
    if let Some(arn) = registered {
        oneoff::retire(r, client, arn).await;
    }
}

/// The result for a person: the verdict, then how each container ended.
pub fn text(ran: &Ran) -> String {
    let id = watch::short(&ran.task_arn);
    let mut out = if ran.result == "succeeded" {
        format!("succeeded: task {id}")
    } else {
        format!("failed: task {id}: {}", ran.reason)
    };
    if !ran.stopped_reason.is_empty() {
        out.push_str(&format!("\n  stopped: {}", ran.stopped_reason));
    }
    for c in &ran.containers {
        let code = match c.exit_code {
            Some(code) => format!("exit code {code}"),
            None => "no exit code".to_string(),
        };
        let reason = if c.reason.is_empty() {
            String::new()
        } else {
            format!(" ({})", c.reason)
        };
        let essential = if c.essential { "" } else { ", not essential" };
        out.push_str(&format!("\n  {}: {code}{reason}{essential}", c.name));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_result_names_each_containers_exit_code() {
        let ran = Ran {
            result: "failed".into(),
            reason: "app exited 7".into(),
            cluster: "c".into(),
            service: Some("web".into()),
            task_arn: "arn:aws:ecs:us-east-1:1:task/c/abc".into(),
            task_definition_arn: "arn:td/web:3".into(),
            image: None,
            stop_code: "EssentialContainerExited".into(),
            stopped_reason: "Essential container in task exited".into(),
            containers: vec![
                ContainerExit {
                    name: "app".into(),
                    essential: true,
                    exit_code: Some(7),
                    reason: String::new(),
                },
                ContainerExit {
                    name: "log".into(),
                    essential: false,
                    exit_code: None,
                    reason: "CannotPullContainerError".into(),
                },
            ],
        };
        assert_eq!(
            text(&ran),
            "failed: task abc: app exited 7\n  stopped: Essential container in task exited\n  \
             app: exit code 7\n  log: no exit code (CannotPullContainerError), not essential"
        );
        let ok = Ran {
            result: "succeeded".into(),
            reason: String::new(),
            stopped_reason: String::new(),
            containers: Vec::new(),
            ..ran
        };
        assert_eq!(text(&ok), "succeeded: task abc");
    }
}
