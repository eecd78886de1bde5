//! The task definition to register: read from a file or the service's current one, stripped of
//! what ECS sets itself, with the new image in the chosen containers (pure). Every field
//! deckhand does not know is kept as it was.

use serde_json::{Map, Value};

use crate::image::reference::ImageRef;

/// Fields DescribeTaskDefinition returns that RegisterTaskDefinition does not take.
pub const READ_ONLY: [&str; 9] = [
    "taskDefinitionArn",
    "revision",
    "status",
    "requiresAttributes",
    "compatibilities",
    "registeredAt",
    "registeredBy",
    "deregisteredAt",
    "deleteRequestedAt",
];

/// A task definition ready to register, and the tags that go with it.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskDef {
    pub body: Map<String, Value>,
    pub tags: Vec<(String, String)>,
}

/// A problem with task-definition input, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputError {
    /// e.g. `$.containerDefinitions[1].image`, or `line 3, column 7`.
    pub at: String,
    pub message: String,
}

impl std::fmt::Display for InputError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.at, self.message)
    }
}

fn err(at: impl Into<String>, message: impl Into<String>) -> InputError {
    InputError {
        at: at.into(),
        message: message.into(),
    }
}

/// Parses RegisterTaskDefinition input or DescribeTaskDefinition output (`{"taskDefinition":
/// {...}, "tags": [...]}` or the bare object): read-only fields and nulls go, the rest stays.
pub fn parse(text: &str) -> Result<TaskDef, InputError> {
    let value: Value = serde_json::from_str(text).map_err(|e| {
        err(
            format!("line {}, column {}", e.line(), e.column()),
            format!("not valid JSON: {e}"),
        )
    })?;
    from_value(value)
}

/// As [`parse`], from JSON already read.
pub fn from_value(value: Value) -> Result<TaskDef, InputError> {
    let Value::Object(mut outer) = value else {
        return Err(err("$", "expected a JSON object (a task definition)"));
    };
    let (inner, tags_value, prefix) = match outer.remove("taskDefinition") {
        Some(Value::Object(inner)) => (inner, outer.remove("tags"), "$.taskDefinition"),
        Some(_) => return Err(err("$.taskDefinition", "expected an object")),
        None => {
            let tags = outer.remove("tags");
            (outer, tags, "$")
        }
    };
    let mut body = match strip_nulls(Value::Object(inner)) {
        Value::Object(m) => m,
        _ => unreachable!("an object stays an object"),
    };
    for field in READ_ONLY {
        body.remove(field);
    }
    if body
        .get("family")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        return Err(err(
            format!("{prefix}.family"),
            "a task definition needs a family (a non-empty string)",
        ));
    }
    let Some(defs) = body.get("containerDefinitions").and_then(|d| d.as_array()) else {
        return Err(err(
            format!("{prefix}.containerDefinitions"),
            "expected a list of container definitions",
        ));
    };
    if defs.is_empty() {
        return Err(err(
            format!("{prefix}.containerDefinitions"),
            "the list is empty",
        ));
    }
    for (i, d) in defs.iter().enumerate() {
        if d.get("name")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            return Err(err(
                format!("{prefix}.containerDefinitions[{i}].name"),
                "each container needs a name",
            ));
        }
        if !d.get("image").is_some_and(|n| n.is_string()) {
            return Err(err(
                format!("{prefix}.containerDefinitions[{i}].image"),
                "each container needs an image",
            ));
        }
    }
    let tags = match strip_nulls(tags_value.unwrap_or(Value::Null)) {
        Value::Null => Vec::new(),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, t)| match (t["key"].as_str(), t["value"].as_str()) {
                (Some(k), v) => Ok((k.to_string(), v.unwrap_or_default().to_string())),
                _ => Err(err(
                    format!("$.tags[{i}]"),
                    "expected {\"key\": …, \"value\": …}",
                )),
            })
            .collect::<Result<_, _>>()?,
        _ => return Err(err("$.tags", "expected a list of {key, value}")),
    };
    Ok(TaskDef { body, tags })
}

/// Drops `null` values at every depth (absent and null mean the same to ECS).
pub fn strip_nulls(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, strip_nulls(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(strip_nulls).collect()),
        v => v,
    }
}

impl TaskDef {
    pub fn family(&self) -> &str {
        self.body["family"].as_str().unwrap_or_default()
    }

    /// (name, image) of every container.
    pub fn containers(&self) -> Vec<(String, String)> {
        self.body["containerDefinitions"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| {
                (
                    c["name"].as_str().unwrap_or_default().to_string(),
                    c["image"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    }

    /// Which containers get the new image: the named ones, or by default every container whose
    /// image is in `repository_uri` (any tag or digest). Zero matches is an error listing them.
    pub fn select(&self, names: &[String], repository_uri: &str) -> Result<Vec<String>, String> {
        let all = self.containers();
        let listing = || {
            all.iter()
                .map(|(n, i)| format!("{n} ({i})"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        if !names.is_empty() {
            for n in names {
                if !all.iter().any(|(name, _)| name == n) {
                    return Err(format!(
                        "the task definition has no container named {n:?}; it has: {}",
                        listing()
                    ));
                }
            }
            return Ok(names.to_vec());
        }
        let chosen: Vec<String> = all
            .iter()
            .filter(|(_, image)| image_repository(image).as_deref() == Some(repository_uri))
            .map(|(n, _)| n.clone())
            .collect();
        if chosen.is_empty() {
            return Err(format!(
                "no container of the task definition uses an image from {repository_uri}, so none would get the new \
                 image; its containers are: {}. Name the ones to update with --container.",
                listing()
            ));
        }
        Ok(chosen)
    }

    /// Sets `image` on the named containers.
    pub fn with_image(&self, containers: &[String], image: &str) -> TaskDef {
        let mut out = self.clone();
        if let Some(defs) = out
            .body
            .get_mut("containerDefinitions")
            .and_then(|d| d.as_array_mut())
        {
            for d in defs.iter_mut() {
                if d["name"]
                    .as_str()
                    .is_some_and(|n| containers.iter().any(|c| c == n))
                {
                    d["image"] = Value::String(image.to_string());
                }
            }
        }
        out
    }

    /// Why tasks of this revision would not start an image built for `image_arch` (`amd64`,
    /// `arm64`), when its `runtimePlatform` says another CPU; Fargate without one runs X86_64.
    pub fn architecture_mismatch(&self, image_arch: &str) -> Option<String> {
        let declared = self
            .body
            .get("runtimePlatform")
            .and_then(|p| p.get("cpuArchitecture"))
            .and_then(Value::as_str);
        let runs = declared.unwrap_or("X86_64");
        let wanted = match runs.to_ascii_uppercase().as_str() {
            "X86_64" => "amd64",
            "ARM64" => "arm64",
            _ => return None,
        };
        if image_arch == wanted {
            return None;
        }
        let fix = match image_arch {
            "arm64" => "Set runtimePlatform.cpuArchitecture to ARM64, or build with --platform linux/amd64",
            _ => "Build with --platform linux/arm64, or set runtimePlatform.cpuArchitecture to X86_64",
        };
        // Without runtimePlatform only an arm64 image is a likely mistake: EC2 capacity may be
        // either, but Fargate's default is X86_64.
        if declared.is_none() && image_arch != "arm64" {
            return None;
        }
        Some(format!(
            "the image is built for {image_arch}, but the task definition's runtimePlatform {} \
             {runs}: its tasks would fail with `exec format error`. {fix}.",
            if declared.is_some() {
                "says"
            } else {
                "is not set, which on Fargate means"
            }
        ))
    }

    /// What of this task definition must be masked in all output: the values of
    /// secret-looking environment variables and URL passwords in any of them, of every
    /// container; and the names in `secrets`, whose values ECS resolves at run time.
    pub fn secrets(&self) -> (Vec<String>, Vec<String>) {
        let containers = self.body["containerDefinitions"].as_array();
        let entries = |field: &'static str| {
            containers
                .into_iter()
                .flatten()
                .flat_map(move |c| c[field].as_array().into_iter().flatten())
        };
        let values =
            crate::secrets::values_to_mask(entries("environment").filter_map(|e| {
                Some((e["name"].as_str().unwrap_or_default(), e["value"].as_str()?))
            }));
        let names = entries("secrets")
            .filter_map(|e| e["name"].as_str().map(str::to_string))
            .collect();
        (values, names)
    }

    /// Registers [`TaskDef::secrets`] for masking.
    pub fn register_secrets(&self) {
        let (values, names) = self.secrets();
        values.iter().for_each(|v| crate::redact::register(v));
        names.iter().for_each(|n| crate::redact::register_name(n));
    }

    /// A copy with `image` in `containers` (by default, those whose image is from the same
    /// repository) and, when known, the commit as the `deckhand:sha` tag (an unknown commit drops
    /// the old revision's tag rather than claim its commit); also the containers that changed.
    pub fn with_new_image(
        &self,
        containers: &[String],
        image: &str,
        sha: Option<&str>,
    ) -> Result<(TaskDef, Vec<String>), String> {
        // An image that does not parse (not rejected here yet) matches no container.
        let repository = image_repository(image).unwrap_or_else(|| image.to_string());
        let chosen = self.select(containers, &repository)?;
        let mut new = self.with_image(&chosen, image);
        match sha {
            Some(sha) => new.tag("deckhand:sha", sha),
            None => new.untag("deckhand:sha"),
        }
        Ok((new, chosen))
    }

    /// Sets (or replaces) a tag.
    pub fn tag(&mut self, key: &str, value: &str) {
        self.tags.retain(|(k, _)| k != key);
        self.tags.push((key.to_string(), value.to_string()));
    }

    /// Drops the tag `key`, if it is there.
    pub fn untag(&mut self, key: &str) {
        self.tags.retain(|(k, _)| k != key);
    }

    /// The RegisterTaskDefinition request body.
    pub fn request(&self) -> Value {
        let mut body = self.body.clone();
        if !self.tags.is_empty() {
            body.insert(
                "tags".into(),
                Value::Array(
                    self.tags
                        .iter()
                        .map(|(k, v)| serde_json::json!({"key": k, "value": v}))
                        .collect(),
                ),
            );
        }
        Value::Object(body)
    }
}

/// The repository part of an image reference (no tag, no digest); `None` if it is not one.
fn image_repository(image: &str) -> Option<String> {
    ImageRef::parse(image).ok().map(|r| r.repository_uri())
}

/// A copy with the values of secret-looking environment variables replaced by `***` (URL
/// passwords in the others are masked when the diff is printed).
pub fn masked(body: &Value) -> Value {
    let mut v = body.clone();
    if let Some(defs) = v
        .get_mut("containerDefinitions")
        .and_then(|d| d.as_array_mut())
    {
        for d in defs {
            if let Some(env) = d.get_mut("environment").and_then(|e| e.as_array_mut()) {
                for e in env {
                    if e["name"]
                        .as_str()
                        .is_some_and(crate::secrets::is_secret_name)
                    {
                        e["value"] = Value::String(crate::redact::MASK.into());
                    }
                }
            }
        }
    }
    v
}

/// A line diff of two task definitions (pretty JSON, secrets masked): `-`/`+` lines with a
/// line of context on each side.
pub fn diff(old: &Value, new: &Value) -> String {
    let a = serde_json::to_string_pretty(&masked(old)).unwrap_or_default();
    let b = serde_json::to_string_pretty(&masked(new)).unwrap_or_default();
    let (a, b): (Vec<&str>, Vec<&str>) = (a.lines().collect(), b.lines().collect());
    // Longest common subsequence table; task definitions are small.
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let mut ops = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            ops.push((' ', a[i]));
            i += 1;
            j += 1;
        } else if j < b.len() && (i == a.len() || lcs[i][j + 1] >= lcs[i + 1][j]) {
            ops.push(('+', b[j]));
            j += 1;
        } else {
            ops.push(('-', a[i]));
            i += 1;
        }
    }
    let changed: Vec<usize> = ops
        .iter()
        .enumerate()
        .filter(|(_, (c, _))| *c != ' ')
        .map(|(k, _)| k)
        .collect();
    let keep = |k: usize| changed.iter().any(|&c| c.abs_diff(k) <= 1);
    ops.iter()
        .enumerate()
        .filter(|(k, _)| keep(*k))
        .map(|(_, (c, line))| format!("{c} {line}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_commit_tag_names_the_new_image_or_nothing() {
        let old = parse(
            r#"{"family":"web","containerDefinitions":[{"name":"app","image":"r.example/web:a"}],
               "tags":[{"key":"deckhand:sha","value":"aaaa"},{"key":"team","value":"x"}]}"#,
        )
        .unwrap();
        let sha = |td: &TaskDef| {
            let tags = td.request()["tags"].clone();
            let tags = tags.as_array().cloned().unwrap_or_default();
            let find = |k: &str| {
                tags.iter()
                    .find(|t| t["key"] == k)
                    .map(|t| t["value"].clone())
            };
            (find("deckhand:sha"), find("team"))
        };
        let (known, _) = old
            .with_new_image(&[], "r.example/web:b", Some("bbbb"))
            .unwrap();
        assert_eq!(sha(&known), (Some("bbbb".into()), Some("x".into())));
        let (unknown, _) = old.with_new_image(&[], "r.example/web:c", None).unwrap();
        assert_eq!(sha(&unknown), (None, Some("x".into())));
    }

    #[test]
    fn an_image_for_another_cpu_than_the_runtime_platform_is_named() {
        let td = |platform: Value| {
            let mut body = serde_json::json!({
                "family": "web",
                "containerDefinitions": [{"name": "web", "image": "x/web:1"}]
            });
            if !platform.is_null() {
                body["runtimePlatform"] = platform;
            }
            from_value(serde_json::json!({ "taskDefinition": body })).unwrap()
        };
        let arm =
            td(serde_json::json!({"cpuArchitecture": "ARM64", "operatingSystemFamily": "LINUX"}));
        let x86 = td(serde_json::json!({"cpuArchitecture": "X86_64"}));
        let unset = td(Value::Null);
        // (task definition, image architecture) → warned?
        let cases = [
            (&arm, "arm64", false),
            (&arm, "amd64", true),
            (&x86, "amd64", false),
            (&x86, "arm64", true),
            (&unset, "amd64", false),
            (&unset, "arm64", true),
            (&arm, "riscv64", true),
        ];
        for (def, arch, warned) in cases {
            assert_eq!(
                def.architecture_mismatch(arch).is_some(),
                warned,
                "{arch} on {:?}",
                def.body["runtimePlatform"]
            );
        }
        let w = x86.architecture_mismatch("arm64").unwrap();
        assert!(
            w.contains("says X86_64") && w.contains("--platform linux/amd64"),
            "{w}"
        );
        let w = unset.architecture_mismatch("arm64").unwrap();
        assert!(w.contains("is not set"), "{w}");
    }
    use serde_json::json;

    const DESCRIBED: &str = r#"{
      "taskDefinition": {
        "taskDefinitionArn": "arn:aws:ecs:us-east-1:1:task-definition/web:7",
        "family": "web",
        "revision": 7,
        "status": "ACTIVE",
        "requiresAttributes": [{"name": "com.amazonaws.ecs.capability.docker-remote-api.1.18"}],
        "compatibilities": ["EC2", "FARGATE"],
        "registeredAt": 1700000000.5,
        "registeredBy": "arn:aws:iam::1:role/ci",
        "networkMode": "awsvpc",
        "cpu": "256",
        "ephemeralStorage": null,
        "someFutureField": {"nested": [1, 2, {"x": true}]},
        "containerDefinitions": [
          {"name": "web", "image": "1.dkr.ecr.us-east-1.amazonaws.com/web:abc", "essential": true,
           "environment": [{"name": "DB_PASSWORD", "value": "hunter2"}, {"name": "MODE", "value": "prod"}],
           "linuxParameters": null},
          {"name": "db", "image": "postgres:16", "essential": false},
          {"name": "cache", "image": "redis@sha256:0000", "essential": false}
        ]
      },
      "tags": [{"key": "team", "value": "core"}]
    }"#;

    #[test]
    fn describe_output_loses_read_only_fields_and_nulls_and_keeps_the_rest() {
        let td = parse(DESCRIBED).unwrap();
        for f in READ_ONLY {
            assert!(!td.body.contains_key(f), "{f} kept");
        }
        assert!(!td.body.contains_key("ephemeralStorage"));
        assert!(td.body["containerDefinitions"][0]
            .get("linuxParameters")
            .is_none());
        assert_eq!(
            td.body["someFutureField"],
            json!({"nested": [1, 2, {"x": true}]})
        );
        assert_eq!(td.body["cpu"], "256");
        assert_eq!(td.tags, vec![("team".to_string(), "core".to_string())]);
        // the bare object works too
        let bare: Value =
            serde_json::from_str::<Value>(DESCRIBED).unwrap()["taskDefinition"].clone();
        assert_eq!(from_value(bare).unwrap().body, td.body);
    }

    #[test]
    fn only_the_app_container_gets_the_new_image() {
        let td = parse(DESCRIBED).unwrap();
        let uri = "1.dkr.ecr.us-east-1.amazonaws.com/web";
        let chosen = td.select(&[], uri).unwrap();
        assert_eq!(chosen, vec!["web"]);
        let new = td.with_image(&chosen, &format!("{uri}@sha256:1111"));
        let images: Vec<String> = new.containers().into_iter().map(|(_, i)| i).collect();
        assert_eq!(
            images,
            vec![
                format!("{uri}@sha256:1111"),
                "postgres:16".into(),
                "redis@sha256:0000".into()
            ]
        );
        // everything else is untouched
        let mut a = td.body.clone();
        let mut b = new.body.clone();
        a["containerDefinitions"][0]
            .as_object_mut()
            .unwrap()
            .remove("image");
        b["containerDefinitions"][0]
            .as_object_mut()
            .unwrap()
            .remove("image");
        assert_eq!(a, b);
    }

    #[test]
    fn container_selection_errors_list_the_containers() {
        let td = parse(DESCRIBED).unwrap();
        let e = td
            .select(&[], "1.dkr.ecr.us-east-1.amazonaws.com/other")
            .unwrap_err();
        assert!(
            e.contains("web (1.dkr.ecr.us-east-1.amazonaws.com/web:abc)")
                && e.contains("--container"),
            "{e}"
        );
        let e = td.select(&["nope".into()], "x").unwrap_err();
        assert!(
            e.contains("no container named \"nope\"") && e.contains("db (postgres:16)"),
            "{e}"
        );
        assert_eq!(td.select(&["db".into()], "x").unwrap(), vec!["db"]);
    }

    #[test]
    fn bad_input_points_at_the_place() {
        assert_eq!(
            parse("{\n  \"family\": \"x\",\n  oops\n}").unwrap_err().at,
            "line 3, column 3"
        );
        assert_eq!(parse("[]").unwrap_err().at, "$");
        assert_eq!(
            parse(r#"{"containerDefinitions": []}"#).unwrap_err().at,
            "$.family"
        );
        let e = parse(r#"{"taskDefinition": {"family": "f", "containerDefinitions": [{"name": "a", "image": "i"}, {"name": "b"}]}}"#).unwrap_err();
        assert_eq!(e.at, "$.taskDefinition.containerDefinitions[1].image");
    }

    #[test]
    fn image_repositories_ignore_tags_and_digests() {
        let d = format!("sha256:{}", "0".repeat(64));
        let cases = [
            (
                "127.0.0.1:5000/a/b:tag".to_string(),
                Some("127.0.0.1:5000/a/b"),
            ),
            (
                format!("127.0.0.1:5000/a/b@{d}"),
                Some("127.0.0.1:5000/a/b"),
            ),
            ("127.0.0.1:5000/a/b".to_string(), Some("127.0.0.1:5000/a/b")),
            ("redis".to_string(), Some("redis")),
            ("Not An Image".to_string(), None),
        ];
        for (image, want) in cases {
            assert_eq!(image_repository(&image).as_deref(), want, "{image}");
        }
    }

    #[test]
    fn diffs_mask_secret_values() {
        let td = parse(DESCRIBED).unwrap();
        let new = td.with_image(&["web".into()], "x/web@sha256:1");
        let d = diff(&td.request(), &new.request());
        assert!(
            d.contains("-       \"image\": \"1.dkr.ecr.us-east-1.amazonaws.com/web:abc\""),
            "{d}"
        );
        assert!(d.contains("+       \"image\": \"x/web@sha256:1\""), "{d}");
        assert!(!d.contains("hunter2"));
        let whole = serde_json::to_string(&masked(&td.request())).unwrap();
        assert!(!whole.contains("hunter2") && whole.contains("prod"));
    }

    #[test]
    fn secrets_come_from_every_container() {
        let td = from_value(json!({
            "family": "web",
            "containerDefinitions": [
                {"name": "web", "image": "web:1", "environment": [
                    {"name": "DB_PASS", "value": "pw"},
                    {"name": "DATABASE_URL", "value": "postgres://app:in-url@db/x"},
                    {"name": "AUTHOR", "value": "someone-visible"},
                    {"name": "AUTH_ENABLED", "value": "true"}
                ]},
                {"name": "side", "image": "side:1",
                 "environment": [{"name": "stripeSk", "value": "sk_test_1"}],
                 "secrets": [{"name": "FROM_SSM", "valueFrom": "arn:aws:ssm:us-east-1:1:parameter/x"}]}
            ]
        }))
        .unwrap();
        let (values, names) = td.secrets();
        assert_eq!(values, vec!["pw", "in-url", "sk_test_1"]);
        assert_eq!(names, vec!["FROM_SSM"]);
        let shown = serde_json::to_string(&masked(&td.request())).unwrap();
        assert!(!shown.contains("sk_test_1") && shown.contains("someone-visible"));
        assert!(shown.contains("arn:aws:ssm"), "ARNs are shown: {shown}");
    }
}
