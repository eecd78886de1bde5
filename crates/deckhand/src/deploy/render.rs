//! Per-deploy changes to the new revision (environment, secrets, environment files, labels,
//! command and entry point, roles, task size, awslogs options): parsed from the flags and
//! deckhand.toml, and applied to the task definition's JSON, replacing what they name and
//! keeping everything else (pure, table-tested).

use serde_json::{json, Map, Value};

use super::taskdef::TaskDef;

/// A `[CONTAINER:]KEY=VALUE` setting (`--env`, `--secret-env`, `--label`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// `None`: every container that gets the new image.
    pub container: Option<String>,
    pub key: String,
    pub value: String,
}

/// A value for one container, or (`None`) for those that get the new image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scoped<T> {
    pub container: Option<String>,
    pub value: T,
}

/// Everything a deploy changes in the new revision, in the order it is applied: the file's
/// settings first, then a service's own, then the flags, so the later one wins for the same
/// key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    pub env: Vec<Assignment>,
    /// `secrets[]`: name and `valueFrom` (a Secrets Manager or SSM parameter ARN, or an SSM
    /// parameter name).
    pub secrets: Vec<Assignment>,
    /// `environmentFiles[]` S3 object ARNs.
    pub env_files: Vec<Scoped<String>>,
    pub labels: Vec<Assignment>,
    pub command: Vec<Scoped<Vec<String>>>,
    pub entry_point: Vec<Scoped<Vec<String>>>,
    pub task_role: Option<String>,
    pub execution_role: Option<String>,
    /// Task-level CPU units, as ECS stores them (`"1024"`).
    pub cpu: Option<String>,
    /// Task-level memory in MiB, as ECS stores it (`"2048"`).
    pub memory: Option<String>,
    pub log_group: Option<String>,
    pub log_stream_prefix: Option<String>,
}

impl Changes {
    /// `self`, then `later` on top: lists add up (later entries replace the same key when
    /// applied), single values are replaced.
    pub fn then(mut self, later: Changes) -> Changes {
        self.env.extend(later.env);
        self.secrets.extend(later.secrets);
        self.env_files.extend(later.env_files);
        self.labels.extend(later.labels);
        self.command.extend(later.command);
        self.entry_point.extend(later.entry_point);
        self.task_role = later.task_role.or(self.task_role);
        self.execution_role = later.execution_role.or(self.execution_role);
        self.cpu = later.cpu.or(self.cpu);
        self.memory = later.memory.or(self.memory);
        self.log_group = later.log_group.or(self.log_group);
        self.log_stream_prefix = later.log_stream_prefix.or(self.log_stream_prefix);
        self
    }

    /// The values that must be masked in all output: those of secret-looking `--env` names
    /// and URL passwords in any `--env` value.
    pub fn secret_values(&self) -> Vec<String> {
        crate::secrets::values_to_mask(self.env.iter().map(|a| (a.key.as_str(), a.value.as_str())))
    }

    /// Every container named by a `CONTAINER:` prefix, each once.
    pub fn named_containers(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let named = self
            .env
            .iter()
            .chain(&self.secrets)
            .chain(&self.labels)
            .filter_map(|a| a.container.as_ref())
            .chain(self.env_files.iter().filter_map(|s| s.container.as_ref()))
            .chain(self.command.iter().filter_map(|s| s.container.as_ref()))
            .chain(self.entry_point.iter().filter_map(|s| s.container.as_ref()));
        for name in named {
            if !out.contains(name) {
                out.push(name.clone());
            }
        }
        out
    }
}

/// ECS container names: 1 to 255 letters, digits, hyphens and underscores.
fn is_container_name(name: &str) -> bool {
    (1..=255).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn container(name: &str) -> Result<String, String> {
    if is_container_name(name) {
        Ok(name.to_string())
    } else {
        Err(format!(
            "{name:?} before the `:` is not a container name (letters, digits, - and _)"
        ))
    }
}

/// Parses `[CONTAINER:]KEY=VALUE`: the container is the part before the first `:` only when
/// that `:` comes before the first `=` (`URL=http://x:1` has none). Errors never show the value.
pub fn parse_assignment(spec: &str) -> Result<Assignment, String> {
    let Some(eq) = spec.find('=') else {
        // Not shown: it may be a line of a multi-line secret value, split off at its newline.
        return Err(
            "an item has no `=`: expected [CONTAINER:]NAME=VALUE. Items are split at \
                    line breaks, so a value cannot span lines: give such a value with \
                    --secret-env or in an --env-file"
                .into(),
        );
    };
    let (head, value) = (&spec[..eq], &spec[eq + 1..]);
    let (container, key) = match head.split_once(':') {
        Some((c, k)) => (Some(self::container(c)?), k),
        None => (None, head),
    };
    if key.is_empty() {
        return Err(format!("{head:?}=…: the name before `=` is empty"));
    }
    if key.chars().any(char::is_whitespace) {
        return Err(format!("{head:?}=…: the name {key:?} has whitespace in it"));
    }
    Ok(Assignment {
        container,
        key: key.to_string(),
        value: value.to_string(),
    })
}

/// A `--secret-env` value: a Secrets Manager secret ARN (with an optional JSON key, version
/// stage and id after it), an SSM parameter ARN, or an SSM parameter name (same region). The
/// error does not show it: it may be a secret pasted by mistake.
pub fn check_secret_source(value: &str) -> Result<(), String> {
    let how = "give a Secrets Manager secret ARN (arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME), \
               an SSM parameter ARN (arn:aws:ssm:REGION:ACCOUNT:parameter/NAME) or an SSM parameter name";
    if let Some(rest) = value.strip_prefix("arn:") {
        let parts: Vec<&str> = rest.split(':').collect();
        let ok = match parts.as_slice() {
            [partition, "secretsmanager", region, account, "secret", name, ..] => {
                !partition.is_empty()
                    && !region.is_empty()
                    && is_account(account)
                    && !name.is_empty()
            }
            [partition, "ssm", region, account, resource] => {
                !partition.is_empty()
                    && !region.is_empty()
                    && is_account(account)
                    && resource
                        .strip_prefix("parameter/")
                        .is_some_and(|n| !n.is_empty())
            }
            _ => false,
        };
        return if ok {
            Ok(())
        } else {
            Err(format!("the ARN is not a secret's: {how}"))
        };
    }
    let name_ok = !value.is_empty()
        && value.len() <= 2048
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-/".contains(c));
    if name_ok {
        Ok(())
    } else {
        Err(format!("the value is not a secret reference: {how}"))
    }
}

fn is_account(account: &str) -> bool {
    account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit())
}

/// Parses `[CONTAINER:]arn:aws:s3:::bucket/key.env`.
pub fn parse_env_file(spec: &str) -> Result<Scoped<String>, String> {
    let (container, arn) = if spec.starts_with("arn:") {
        (None, spec)
    } else {
        match spec.split_once(':') {
            Some((c, arn)) => (Some(self::container(c)?), arn),
            None => (None, spec),
        }
    };
    let object = arn.strip_prefix("arn:").and_then(|rest| {
        let (partition, rest) = rest.split_once(':')?;
        let object = rest.strip_prefix("s3:::")?;
        (!partition.is_empty()).then_some(object)
    });
    let ok = object.is_some_and(|o| {
        o.split_once('/')
            .is_some_and(|(bucket, key)| !bucket.is_empty() && key.len() > ".env".len())
            && o.ends_with(".env")
    });
    if !ok {
        return Err(format!(
            "{arn:?} is not an S3 object ARN of a .env file: give arn:aws:s3:::BUCKET/KEY.env"
        ));
    }
    Ok(Scoped {
        container,
        value: arn.to_string(),
    })
}

/// Parses `[CONTAINER:]COMMAND` (`--command`, `--entry-point`): a leading word of container-name
/// characters followed by `:` names the container (`web:bin/rails server`; to run a command
/// that itself starts so, put the container first: `web:python:3 app.py`). The command is
/// split as a POSIX shell would.
pub fn parse_command(spec: &str) -> Result<Scoped<Vec<String>>, String> {
    let (container, line) = match spec.split_once(':') {
        Some((c, rest)) if is_container_name(c) => (Some(c.to_string()), rest),
        _ => (None, spec),
    };
    let words = shlex::split(line).ok_or_else(|| format!("{line:?}: a quote is not closed"))?;
    if words.is_empty() {
        return Err("the command is empty".into());
    }
    Ok(Scoped {
        container,
        value: words,
    })
}

/// An IAM role ARN: `arn:PARTITION:iam::ACCOUNT:role/[PATH/]NAME`.
pub fn check_role(arn: &str) -> Result<(), String> {
    let ok = arn
        .strip_prefix("arn:")
        .map(|rest| rest.splitn(5, ':').collect::<Vec<_>>())
        .is_some_and(|p| {
            matches!(p.as_slice(), [partition, "iam", "", account, resource]
                if !partition.is_empty() && is_account(account)
                    && resource.strip_prefix("role/").is_some_and(|n| !n.is_empty() && !n.ends_with('/')))
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{arn:?} is not an IAM role ARN: give arn:aws:iam::ACCOUNT:role/NAME"
        ))
    }
}

/// A CloudWatch Logs group name: 1 to 512 of letters, digits and `._-/#`.
pub fn check_log_group(name: &str) -> Result<(), String> {
    let ok = (1..=512).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-/#".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a log group name: letters, digits and . _ - / #, at most 512"
        ))
    }
}

/// An awslogs stream prefix: it starts stream names, which cannot hold `:` or `*`.
pub fn check_stream_prefix(prefix: &str) -> Result<(), String> {
    if prefix.len() <= 400 && !prefix.contains([':', '*']) {
        Ok(())
    } else {
        Err(format!(
            "{prefix:?} is not a log stream prefix: no : or *, at most 400 characters"
        ))
    }
}

/// Task CPU as ECS stores it, from CPU units (`1024`) or vCPUs (`1 vCPU`, `.5 vcpu`): 128 to
/// 196608 units (0.125 to 192 vCPU).
pub fn parse_cpu(text: &str) -> Result<String, String> {
    let t = text.trim().to_ascii_lowercase();
    let units = match t.strip_suffix("vcpu") {
        Some(n) => whole(n.trim(), 1024.0),
        None => t.parse::<u64>().ok(),
    };
    match units {
        Some(u) if (128..=196_608).contains(&u) => Ok(u.to_string()),
        _ => Err(format!(
            "{text:?} is not a task CPU size: give CPU units (e.g. 256, 1024, 4096) or vCPUs \
             (e.g. \".25 vCPU\", \"2 vCPU\"), from 128 units to 192 vCPU"
        )),
    }
}

/// Task memory in MiB as ECS stores it, from MiB (`2048`, `512 MiB`) or GB (`2 GB`, `0.5GB`).
pub fn parse_memory(text: &str) -> Result<String, String> {
    let t = text.trim().to_ascii_lowercase();
    let mib = if let Some(n) = t.strip_suffix("gb").or_else(|| t.strip_suffix("gib")) {
        whole(n.trim(), 1024.0)
    } else if let Some(n) = t.strip_suffix("mib").or_else(|| t.strip_suffix("mb")) {
        n.trim().parse::<u64>().ok()
    } else {
        t.parse::<u64>().ok()
    };
    match mib {
        Some(m) if (6..=1_048_576).contains(&m) => Ok(m.to_string()),
        _ => Err(format!(
            "{text:?} is not a task memory size: give MiB (e.g. 512, 2048) or GB (e.g. \"2 GB\")"
        )),
    }
}

/// `number × factor` when that is a whole number.
fn whole(number: &str, factor: f64) -> Option<u64> {
    let n: f64 = number.parse().ok()?;
    let v = n * factor;
    (v.is_finite() && v >= 0.0 && v.fract() == 0.0).then_some(v as u64)
}

/// Whether Fargate runs a task of `cpu` units with `memory` MiB (the developer guide's table).
pub fn fargate_size_ok(cpu: u64, memory: u64) -> bool {
    let range = |lo: u64, hi: u64, step: u64| (lo..=hi).contains(&memory) && memory % step == 0;
    match cpu {
        256 => matches!(memory, 512 | 1024 | 2048),
        512 => range(1024, 4096, 1024),
        1024 => range(2048, 8192, 1024),
        2048 => range(4096, 16384, 1024),
        4096 => range(8192, 30720, 1024),
        8192 => range(16384, 61440, 4096),
        16384 => range(32768, 122_880, 8192),
        _ => false,
    }
}

/// What [`apply`] made: the new task definition, and the `CONTAINER:` names it does not have
/// (their settings were not applied; with one service that is an error, see [`unknown`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    pub td: TaskDef,
    pub missing: Vec<String>,
}

/// The error for `CONTAINER:` names that none of the task definitions has, listing each one's
/// containers; `None` when every name is somewhere. `rendered` is (service, task definition,
/// missing names) per service.
pub fn unknown(rendered: &[(&str, &TaskDef, &[String])]) -> Option<String> {
    let first = rendered.first()?;
    let nowhere: Vec<&String> = first
        .2
        .iter()
        .filter(|name| {
            rendered
                .iter()
                .all(|(_, _, missing)| missing.contains(name))
        })
        .collect();
    if nowhere.is_empty() {
        return None;
    }
    let listing: Vec<String> = rendered
        .iter()
        .map(|(service, td, _)| {
            let names: Vec<String> = td.containers().into_iter().map(|(n, _)| n).collect();
            format!("{service}'s {} has {}", td.family(), names.join(", "))
        })
        .collect();
    let names: Vec<String> = nowhere.iter().map(|n| format!("{n:?}")).collect();
    Some(format!(
        "no container named {} in the task definition ({}); fix the CONTAINER: prefix",
        names.join(", "),
        listing.join("; ")
    ))
}

/// Applies `changes` to `td`: settings without a container go to `image_containers` (those
/// that get the new image); a `CONTAINER:` setting to that container. Each sets its key and
/// keeps the rest in place (new keys appended); a name set as `--env` leaves `secrets` and one
/// set as `--secret-env` leaves `environment`. `region` is used for a container that gets
/// awslogs options but has no log configuration. An `Err` is a usage error.
pub fn apply(
    td: &TaskDef,
    image_containers: &[String],
    changes: &Changes,
    region: Option<&str>,
) -> Result<Rendered, String> {
    let mut out = td.clone();
    let names: Vec<String> = td.containers().into_iter().map(|(n, _)| n).collect();
    let missing: Vec<String> = changes
        .named_containers()
        .into_iter()
        .filter(|n| !names.contains(n))
        .collect();
    let targets = |container: &Option<String>| -> Vec<String> {
        match container {
            Some(c) => vec![c.clone()],
            None => image_containers.to_vec(),
        }
    };
    // --command and --entry-point without a container need exactly one to go to.
    for (flag, list) in [
        ("--command", &changes.command),
        ("--entry-point", &changes.entry_point),
    ] {
        if list.iter().any(|s| s.container.is_none()) && image_containers.len() > 1 {
            return Err(format!(
                "{flag} without a container is ambiguous: {} all get the new image. Name one: \
                 {flag} \"{}:…\"",
                image_containers.join(", "),
                image_containers[0]
            ));
        }
    }
    let defs = out
        .body
        .get_mut("containerDefinitions")
        .and_then(Value::as_array_mut)
        .ok_or("the task definition has no containerDefinitions")?;
    let find = |defs: &mut Vec<Value>, name: &str| -> Option<usize> {
        defs.iter().position(|d| d["name"] == name)
    };
    for a in &changes.env {
        for c in targets(&a.container) {
            if let Some(i) = find(defs, &c) {
                remove_named(&mut defs[i], "secrets", &a.key);
                set_named(&mut defs[i], "environment", &a.key, "value", &a.value);
            }
        }
    }
    for a in &changes.secrets {
        for c in targets(&a.container) {
            if let Some(i) = find(defs, &c) {
                remove_named(&mut defs[i], "environment", &a.key);
                set_named(&mut defs[i], "secrets", &a.key, "valueFrom", &a.value);
            }
        }
    }
    for f in &changes.env_files {
        for c in targets(&f.container) {
            if let Some(i) = find(defs, &c) {
                let files = list(&mut defs[i], "environmentFiles");
                if !files.iter().any(|e| e["value"] == f.value.as_str()) {
                    files.push(json!({"value": f.value, "type": "s3"}));
                }
            }
        }
    }
    for a in &changes.labels {
        for c in targets(&a.container) {
            if let Some(i) = find(defs, &c) {
                object(&mut defs[i], "dockerLabels")
                    .insert(a.key.clone(), Value::String(a.value.clone()));
            }
        }
    }
    for (field, list) in [
        ("command", &changes.command),
        ("entryPoint", &changes.entry_point),
    ] {
        for s in list {
            for c in targets(&s.container) {
                if let Some(i) = find(defs, &c) {
                    defs[i][field] = json!(s.value);
                }
            }
        }
    }
    if changes.log_group.is_some() || changes.log_stream_prefix.is_some() {
        for c in image_containers {
            if let Some(i) = find(defs, c) {
                set_awslogs(&mut defs[i], changes, region)?;
            }
        }
    }
    let body = &mut out.body;
    for (field, value) in [
        ("taskRoleArn", &changes.task_role),
        ("executionRoleArn", &changes.execution_role),
        ("cpu", &changes.cpu),
        ("memory", &changes.memory),
    ] {
        if let Some(v) = value {
            body.insert(field.into(), Value::String(v.clone()));
        }
    }
    if changes.cpu.is_some() || changes.memory.is_some() {
        check_fargate_size(body)?;
    }
    Ok(Rendered { td: out, missing })
}

/// A Fargate-compatible task definition's size must be one Fargate has.
fn check_fargate_size(body: &Map<String, Value>) -> Result<(), String> {
    let fargate = body
        .get("requiresCompatibilities")
        .and_then(Value::as_array)
        .is_some_and(|a| a.iter().any(|c| c == "FARGATE"));
    if !fargate {
        return Ok(());
    }
    let number = |field: &str| {
        body.get(field).and_then(|v| {
            v.as_str()
                .and_then(|s| s.parse::<u64>().ok())
                .or_else(|| v.as_u64())
        })
    };
    match (number("cpu"), number("memory")) {
        (Some(cpu), Some(memory)) if fargate_size_ok(cpu, memory) => Ok(()),
        (cpu, memory) => Err(format!(
            "the task definition requires FARGATE, which has no task of cpu {} and memory {}: \
             use a pair from its table (e.g. --cpu 256 --memory 512, --cpu 1024 --memory \"2 GB\", \
             --cpu \"2 vCPU\" --memory \"4 GB\")",
            cpu.map_or("(none)".into(), |c| c.to_string()),
            memory.map_or("(none)".into(), |m| format!("{m} MiB")),
        )),
    }
}

/// The stream prefix a container given the awslogs driver here gets, as the ECS console's.
const DEFAULT_STREAM_PREFIX: &str = "ecs";

/// Sets `awslogs-group` and `awslogs-stream-prefix` on an awslogs container; one without a
/// log configuration gets the awslogs driver (with `region`, and the stream prefix `ecs` unless
/// one is given: Fargate requires a prefix, and without one a task's streams cannot be named),
/// one with another driver is refused.
fn set_awslogs(def: &mut Value, changes: &Changes, region: Option<&str>) -> Result<(), String> {
    let name = def["name"].as_str().unwrap_or_default().to_string();
    let driver = def["logConfiguration"]["logDriver"]
        .as_str()
        .map(str::to_string);
    match driver.as_deref() {
        Some("awslogs") => {}
        Some(other) => {
            return Err(format!(
                "container {name} logs with the {other} driver, not awslogs: --log-group and \
                 --log-stream-prefix set awslogs options. Drop them, or switch the container to \
                 awslogs in its task definition"
            ))
        }
        None => {
            let Some(group) = &changes.log_group else {
                return Err(format!(
                    "container {name} has no log configuration: --log-stream-prefix needs \
                     --log-group too, to give it the awslogs driver"
                ));
            };
            let Some(region) = region else {
                return Err(format!(
                    "container {name} has no log configuration, and the awslogs driver needs the \
                     region: give --region"
                ));
            };
            def["logConfiguration"] = json!({
                "logDriver": "awslogs",
                "options": {"awslogs-group": group, "awslogs-region": region,
                    "awslogs-stream-prefix": DEFAULT_STREAM_PREFIX},
            });
        }
    }
    let options = object(&mut def["logConfiguration"], "options");
    if let Some(group) = &changes.log_group {
        options.insert("awslogs-group".into(), Value::String(group.clone()));
    }
    if let Some(prefix) = &changes.log_stream_prefix {
        options.insert(
            "awslogs-stream-prefix".into(),
            Value::String(prefix.clone()),
        );
    }
    Ok(())
}

/// `def[field]` as a list, made one if it is missing (or not a list).
fn list<'a>(def: &'a mut Value, field: &str) -> &'a mut Vec<Value> {
    if !def[field].is_array() {
        def[field] = json!([]);
    }
    def[field].as_array_mut().expect("made a list")
}

/// `def[field]` as an object, made one if it is missing (or not an object).
fn object<'a>(def: &'a mut Value, field: &str) -> &'a mut Map<String, Value> {
    if !def[field].is_object() {
        def[field] = json!({});
    }
    def[field].as_object_mut().expect("made an object")
}

/// Sets `{name, <value_field>}` in the list `field`: in place where the name is, else appended.
fn set_named(def: &mut Value, field: &str, name: &str, value_field: &str, value: &str) {
    let entries = list(def, field);
    match entries.iter_mut().find(|e| e["name"] == name) {
        Some(e) => e[value_field] = Value::String(value.to_string()),
        None => entries.push(json!({"name": name, value_field: value})),
    }
}

/// Drops the entries named `name` from the list `field`, if there is one.
fn remove_named(def: &mut Value, field: &str, name: &str) {
    if let Some(entries) = def.get_mut(field).and_then(Value::as_array_mut) {
        entries.retain(|e| e["name"] != name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(container: Option<&str>, key: &str, value: &str) -> Assignment {
        Assignment {
            container: container.map(str::to_string),
            key: key.into(),
            value: value.into(),
        }
    }

    #[test]
    fn assignments_parse_with_an_optional_container() {
        let cases = [
            ("KEY=VALUE", a(None, "KEY", "VALUE")),
            ("web:KEY=VALUE", a(Some("web"), "KEY", "VALUE")),
            ("URL=http://x:1/a=b", a(None, "URL", "http://x:1/a=b")),
            ("web:URL=http://x:1", a(Some("web"), "URL", "http://x:1")),
            ("EMPTY=", a(None, "EMPTY", "")),
            ("side-car_2:K=a=b", a(Some("side-car_2"), "K", "a=b")),
        ];
        for (spec, want) in cases {
            assert_eq!(parse_assignment(spec), Ok(want), "{spec}");
        }
        let bad = [
            ("NOEQUALS", "expected [CONTAINER:]NAME=VALUE"),
            ("MIIEvQIBADANBgkqhkiG9w0BAQEFAASC", "cannot span lines"),
            ("=hunter2", "is empty"),
            ("web:=hunter2", "is empty"),
            (":K=V", "is not a container name"),
            ("a b:K=V", "is not a container name"),
            ("MY KEY=hunter2", "whitespace"),
        ];
        for (spec, says) in bad {
            let e = parse_assignment(spec).unwrap_err();
            assert!(e.contains(says), "{spec}: {e}");
            assert!(!e.contains("hunter2"), "the value is never shown: {e}");
            assert!(!e.contains("MIIE"), "nor a line of one: {e}");
        }
    }

    #[test]
    fn secret_sources_are_secrets_manager_or_ssm() {
        for ok in [
            "arn:aws:secretsmanager:eu-west-1:123456789012:secret:db-AbCdEf",
            "arn:aws:secretsmanager:eu-west-1:123456789012:secret:db-AbCdEf:password::",
            "arn:aws-cn:ssm:cn-north-1:123456789012:parameter/prod/db",
            "/prod/db/password",
            "db_password",
        ] {
            assert_eq!(check_secret_source(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "arn:aws:s3:::bucket/key",
            "arn:aws:secretsmanager:eu-west-1:1234:secret:db",
            "arn:aws:secretsmanager:eu-west-1:123456789012:db",
            "arn:aws:ssm:eu-west-1:123456789012:parameter/",
            "arn:aws:ssm:eu-west-1:123456789012:document/x",
            "not a name",
        ] {
            let e = check_secret_source(bad).unwrap_err();
            assert!(e.contains("Secrets Manager"), "{bad}: {e}");
        }
    }

    #[test]
    fn env_files_are_s3_objects_with_an_optional_container() {
        let arn = "arn:aws:s3:::bucket/app/prod.env";
        assert_eq!(
            parse_env_file(arn),
            Ok(Scoped {
                container: None,
                value: arn.into()
            })
        );
        assert_eq!(
            parse_env_file(&format!("web:{arn}")),
            Ok(Scoped {
                container: Some("web".into()),
                value: arn.into()
            })
        );
        for bad in [
            "s3://bucket/a.env",
            "arn:aws:s3:::bucket",
            "arn:aws:s3:::bucket/.env",
            "arn:aws:s3:::bucket/a.txt",
            "arn:aws:ssm:::bucket/a.env",
            "a b:arn:aws:s3:::b/a.env",
        ] {
            assert!(parse_env_file(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn commands_split_as_a_shell_would_with_an_optional_container() {
        let s = |c: Option<&str>, w: &[&str]| Scoped {
            container: c.map(str::to_string),
            value: w.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        };
        let cases = [
            (
                "bin/rails server -p 3000",
                s(None, &["bin/rails", "server", "-p", "3000"]),
            ),
            ("web:sleep 600", s(Some("web"), &["sleep", "600"])),
            ("sh -c 'echo a:b'", s(None, &["sh", "-c", "echo a:b"])),
            (
                "web:python:3 app.py",
                s(Some("web"), &["python:3", "app.py"]),
            ),
            ("bin/x:y", s(None, &["bin/x:y"])),
        ];
        for (spec, want) in cases {
            assert_eq!(parse_command(spec), Ok(want), "{spec}");
        }
        assert!(parse_command("sh -c 'open").is_err());
        assert!(parse_command("web:").is_err());
        assert!(parse_command("  ").is_err());
    }

    #[test]
    fn roles_are_iam_role_arns() {
        for ok in [
            "arn:aws:iam::123456789012:role/web-task",
            "arn:aws-us-gov:iam::123456789012:role/path/to/web",
        ] {
            assert_eq!(check_role(ok), Ok(()), "{ok}");
        }
        for bad in [
            "web-task",
            "arn:aws:iam::123456789012:user/x",
            "arn:aws:iam::1234:role/x",
            "arn:aws:iam:us-east-1:123456789012:role/x",
            "arn:aws:iam::123456789012:role/",
        ] {
            assert!(check_role(bad).unwrap_err().contains("role ARN"), "{bad}");
        }
    }

    #[test]
    fn log_groups_and_prefixes_are_what_cloudwatch_names() {
        assert!(check_log_group("/ecs/web-prod_1#a.b").is_ok());
        for bad in ["", "has space", "a:b", &"x".repeat(513)] {
            assert!(check_log_group(bad).is_err(), "{bad}");
        }
        assert!(check_stream_prefix("web/app").is_ok());
        assert!(check_stream_prefix("a:b").is_err() && check_stream_prefix("a*").is_err());
    }

    #[test]
    fn cpu_and_memory_take_the_forms_ecs_does() {
        for (text, want) in [
            ("1024", Some("1024")),
            ("1 vCPU", Some("1024")),
            (".25 vcpu", Some("256")),
            ("0.5vCPU", Some("512")),
            (" 16 VCPU ", Some("16384")),
            ("128", Some("128")),
            ("64", None),
            ("0.1 vCPU", None),
            ("lots", None),
            ("-1", None),
            ("200 vCPU", None),
        ] {
            assert_eq!(parse_cpu(text).ok().as_deref(), want, "{text}");
        }
        for (text, want) in [
            ("2048", Some("2048")),
            ("2 GB", Some("2048")),
            ("0.5GB", Some("512")),
            ("3gb", Some("3072")),
            ("512 MiB", Some("512")),
            ("1.3 GB", None),
            ("0", None),
            ("big", None),
        ] {
            assert_eq!(parse_memory(text).ok().as_deref(), want, "{text}");
        }
        for (cpu, memory, ok) in [
            (256, 512, true),
            (256, 4096, false),
            (1024, 2048, true),
            (1024, 1024, false),
            (2048, 5120, true),
            (8192, 20480, true),
            (8192, 18432, false),
            (300, 1024, false),
        ] {
            assert_eq!(fargate_size_ok(cpu, memory), ok, "{cpu}/{memory}");
        }
    }

    fn td(body: Value) -> TaskDef {
        super::super::taskdef::from_value(body).unwrap()
    }

    fn base() -> TaskDef {
        td(json!({
            "family": "app",
            "containerDefinitions": [
                {"name": "web", "image": "r/app:1",
                 "environment": [
                    {"name": "KEEP", "value": "k"},
                    {"name": "MODE", "value": "old"},
                    {"name": "MOVED", "value": "plain"}],
                 "secrets": [{"name": "TOKEN", "valueFrom": "/old/token"}],
                 "dockerLabels": {"team": "core"},
                 "logConfiguration": {"logDriver": "awslogs",
                    "options": {"awslogs-group": "old", "awslogs-region": "eu-west-1"}}},
                {"name": "worker", "image": "r/app:1", "command": ["old"]},
                {"name": "proxy", "image": "nginx:1", "logConfiguration": {"logDriver": "splunk"}}
            ]
        }))
    }

    fn changes() -> Changes {
        Changes::default()
    }

    #[test]
    fn environment_replaces_the_same_key_keeps_the_rest_and_appends_new_ones() {
        let c = Changes {
            env: vec![
                a(None, "MODE", "new"),
                a(None, "ADDED", "1"),
                a(Some("worker"), "QUEUE", "low"),
                a(None, "TOKEN", "now-plain"),
            ],
            secrets: vec![a(Some("web"), "MOVED", "/param/moved")],
            ..changes()
        };
        let out = apply(&base(), &["web".into(), "worker".into()], &c, None).unwrap();
        assert!(out.missing.is_empty());
        let web = &out.td.body["containerDefinitions"][0];
        assert_eq!(
            web["environment"],
            json!([
                {"name": "KEEP", "value": "k"},
                {"name": "MODE", "value": "new"},
                {"name": "ADDED", "value": "1"},
                {"name": "TOKEN", "value": "now-plain"}
            ])
        );
        assert_eq!(
            web["secrets"],
            json!([{"name": "MOVED", "valueFrom": "/param/moved"}]),
            "a name is either plain or secret: the later setting wins"
        );
        let worker = &out.td.body["containerDefinitions"][1];
        assert_eq!(
            worker["environment"],
            json!([
                {"name": "MODE", "value": "new"},
                {"name": "ADDED", "value": "1"},
                {"name": "QUEUE", "value": "low"},
                {"name": "TOKEN", "value": "now-plain"}
            ])
        );
        let proxy = &out.td.body["containerDefinitions"][2];
        assert!(proxy.get("environment").is_none(), "not an image container");
    }

    #[test]
    fn every_kind_of_change_lands_where_ecs_reads_it() {
        let c = Changes {
            secrets: vec![a(
                None,
                "DB",
                "arn:aws:ssm:eu-west-1:123456789012:parameter/db",
            )],
            env_files: vec![
                Scoped {
                    container: None,
                    value: "arn:aws:s3:::b/a.env".into(),
                },
                Scoped {
                    container: None,
                    value: "arn:aws:s3:::b/a.env".into(),
                },
            ],
            labels: vec![a(None, "team", "payments"), a(None, "tier", "1")],
            command: vec![Scoped {
                container: None,
                value: vec!["sleep".into(), "601".into()],
            }],
            entry_point: vec![Scoped {
                container: Some("proxy".into()),
                value: vec!["/bin/sh".into(), "-c".into()],
            }],
            task_role: Some("arn:aws:iam::123456789012:role/t".into()),
            execution_role: Some("arn:aws:iam::123456789012:role/e".into()),
            cpu: Some("512".into()),
            memory: Some("1024".into()),
            log_group: Some("/ecs/app".into()),
            log_stream_prefix: Some("app".into()),
            ..changes()
        };
        let out = apply(&base(), &["web".into()], &c, Some("us-east-1")).unwrap();
        let body = &out.td.body;
        let web = &body["containerDefinitions"][0];
        assert_eq!(
            web["secrets"],
            json!([
                {"name": "TOKEN", "valueFrom": "/old/token"},
                {"name": "DB", "valueFrom": "arn:aws:ssm:eu-west-1:123456789012:parameter/db"}
            ])
        );
        assert_eq!(
            web["environmentFiles"],
            json!([{"value": "arn:aws:s3:::b/a.env", "type": "s3"}]),
            "the same file once"
        );
        assert_eq!(
            web["dockerLabels"],
            json!({"team": "payments", "tier": "1"})
        );
        assert_eq!(web["command"], json!(["sleep", "601"]));
        assert_eq!(
            web["logConfiguration"],
            json!({"logDriver": "awslogs", "options": {
                "awslogs-group": "/ecs/app", "awslogs-region": "eu-west-1",
                "awslogs-stream-prefix": "app"}}),
            "the region it had is kept"
        );
        assert_eq!(
            body["containerDefinitions"][1]["command"],
            json!(["old"]),
            "worker does not get the image here"
        );
        assert_eq!(
            body["containerDefinitions"][2]["entryPoint"],
            json!(["/bin/sh", "-c"])
        );
        for (field, want) in [
            ("taskRoleArn", "arn:aws:iam::123456789012:role/t"),
            ("executionRoleArn", "arn:aws:iam::123456789012:role/e"),
            ("cpu", "512"),
            ("memory", "1024"),
        ] {
            assert_eq!(body[field], want, "{field}");
        }
        // Nothing else changed.
        let untouched = apply(&base(), &["web".into()], &changes(), None).unwrap();
        assert_eq!(untouched.td, base());
    }

    #[test]
    fn awslogs_options_need_an_awslogs_container_or_none() {
        let group = Changes {
            log_group: Some("/ecs/w".into()),
            ..changes()
        };
        let out = apply(&base(), &["worker".into()], &group, Some("us-east-1")).unwrap();
        assert_eq!(
            out.td.body["containerDefinitions"][1]["logConfiguration"],
            json!({"logDriver": "awslogs", "options": {
                "awslogs-group": "/ecs/w", "awslogs-region": "us-east-1",
                "awslogs-stream-prefix": "ecs"}})
        );
        let cases = [
            (
                &["proxy"][..],
                group.clone(),
                Some("r"),
                "logs with the splunk driver",
            ),
            (&["worker"][..], group.clone(), None, "give --region"),
            (
                &["worker"][..],
                Changes {
                    log_stream_prefix: Some("p".into()),
                    ..changes()
                },
                Some("r"),
                "needs --log-group too",
            ),
        ];
        for (image, c, region, says) in cases {
            let image: Vec<String> = image.iter().map(|s| s.to_string()).collect();
            let e = apply(&base(), &image, &c, region).unwrap_err();
            assert!(e.contains(says), "{image:?}: {e}");
        }
    }

    #[test]
    fn an_unprefixed_command_needs_one_image_container() {
        let c = Changes {
            command: vec![Scoped {
                container: None,
                value: vec!["x".into()],
            }],
            ..changes()
        };
        let e = apply(&base(), &["web".into(), "worker".into()], &c, None).unwrap_err();
        assert!(
            e.contains("ambiguous") && e.contains("web, worker") && e.contains("\"web:…\""),
            "{e}"
        );
        let named = Changes {
            command: vec![Scoped {
                container: Some("worker".into()),
                value: vec!["x".into()],
            }],
            ..changes()
        };
        let out = apply(&base(), &["web".into(), "worker".into()], &named, None).unwrap();
        assert_eq!(
            out.td.body["containerDefinitions"][1]["command"],
            json!(["x"])
        );
    }

    #[test]
    fn unknown_containers_are_reported_unless_another_service_has_them() {
        let c = Changes {
            env: vec![a(Some("nope"), "K", "V"), a(Some("worker"), "K", "V")],
            ..changes()
        };
        let out = apply(&base(), &["web".into()], &c, None).unwrap();
        assert_eq!(out.missing, vec!["nope"]);
        let e = unknown(&[("svc", &out.td, &out.missing)]).unwrap();
        assert!(
            e.contains("no container named \"nope\"")
                && e.contains("svc's app has web, worker, proxy"),
            "{e}"
        );
        let other = td(json!({"family": "other", "containerDefinitions": [
            {"name": "nope", "image": "x"}]}));
        assert_eq!(
            unknown(&[("svc", &out.td, &out.missing), ("b", &other, &[])]),
            None,
            "the other service has it"
        );
    }

    #[test]
    fn a_fargate_task_gets_only_a_size_fargate_has() {
        let mut fargate = base();
        fargate
            .body
            .insert("requiresCompatibilities".into(), json!(["FARGATE"]));
        fargate.body.insert("cpu".into(), json!("256"));
        fargate.body.insert("memory".into(), json!("512"));
        let sized = |cpu: &str, memory: Option<&str>| Changes {
            cpu: Some(cpu.into()),
            memory: memory.map(str::to_string),
            ..changes()
        };
        assert!(apply(&fargate, &["web".into()], &sized("256", Some("1024")), None).is_ok());
        let e = apply(&fargate, &["web".into()], &sized("1024", None), None).unwrap_err();
        assert!(e.contains("cpu 1024 and memory 512 MiB"), "{e}");
        assert!(
            apply(&base(), &["web".into()], &sized("1024", None), None).is_ok(),
            "EC2 takes any size"
        );
    }

    #[test]
    fn layers_add_up_and_later_single_values_win() {
        let file = Changes {
            env: vec![a(None, "A", "file")],
            cpu: Some("256".into()),
            task_role: Some("r1".into()),
            ..changes()
        };
        let flags = Changes {
            env: vec![a(None, "A", "flag")],
            cpu: Some("512".into()),
            ..changes()
        };
        let c = file.then(flags);
        assert_eq!(c.env, vec![a(None, "A", "file"), a(None, "A", "flag")]);
        assert_eq!(c.cpu.as_deref(), Some("512"));
        assert_eq!(c.task_role.as_deref(), Some("r1"));
        let out = apply(&base(), &["web".into()], &c, None).unwrap();
        assert_eq!(
            out.td.body["containerDefinitions"][0]["environment"][3],
            json!({"name": "A", "value": "flag"})
        );
        assert_eq!(
            Changes {
                env: vec![a(None, "DB_PASSWORD", "hunter22"), a(None, "MODE", "x")],
                ..changes()
            }
            .secret_values(),
            vec!["hunter22"]
        );
    }
}
