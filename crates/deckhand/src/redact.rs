//! Keeps secrets (registry passwords, tokens) out of every byte deckhand writes.
//!
//! Secrets are registered the moment they are obtained; every writer deckhand uses for logs
//! and results goes through [`redact`], so a secret that slips into an error message from a
//! dependency is still masked.

use std::io::{self, Write};
use std::sync::RwLock;

use serde_json::Value;

/// Every secret of the process. Global on purpose: a secret can surface in any error text,
/// from any library, at any depth, and must be masked wherever it is written.
static SECRETS: RwLock<Registry> = RwLock::new(Registry {
    longest_first: Vec::new(),
    in_order: Vec::new(),
    names: Vec::new(),
});

struct Registry {
    /// Longest first, so a secret that contains another is masked whole.
    longest_first: Vec<String>,
    /// The order they were registered in, for [`registered_since`].
    in_order: Vec<String>,
    /// Names whose values are secret though deckhand never sees them (a task definition's
    /// `secrets`, resolved by ECS at run time): masked after the name in log text.
    names: Vec<String>,
}

/// The text that replaces a secret in output.
pub const MASK: &str = "***";

/// Values shorter than this are masked only as whole tokens (not next to a letter or digit),
/// so a short password such as `abc` does not mangle `abcdef`; longer ones wherever they are.
pub const SHORT: usize = 8;

/// Registers a secret so that it never appears in output, at any length and of any form
/// (`1234` too). An empty value and the setting words are not registered
/// ([`crate::secrets::worth_masking`]: true/false/yes/no/on/off/none/null). A value of several
/// lines is also registered line by line (each line with a letter or digit), as a log may
/// show its lines apart.
pub fn register(secret: &str) {
    if !crate::secrets::worth_masking(secret) {
        return;
    }
    let mut secrets = SECRETS.write().unwrap_or_else(|e| e.into_inner());
    let lines = secret
        .lines()
        .map(str::trim)
        .filter(|l| secret.contains('\n') && l.bytes().any(|b| b.is_ascii_alphanumeric()));
    for s in std::iter::once(secret).chain(lines) {
        if !crate::secrets::worth_masking(s) || secrets.in_order.iter().any(|known| known == s) {
            continue;
        }
        secrets.in_order.push(s.to_string());
        secrets.longest_first.push(s.to_string());
        secrets
            .longest_first
            .sort_by_key(|s| std::cmp::Reverse(s.len()));
    }
}

/// Registers the name of a variable whose value deckhand cannot see but a log may show
/// (`NAME=value` lines are masked for it, as for secret-looking names).
pub fn register_name(name: &str) {
    let mut secrets = SECRETS.write().unwrap_or_else(|e| e.into_inner());
    if !name.is_empty() && !secrets.names.iter().any(|n| n == name) {
        secrets.names.push(name.to_string());
    }
}

/// The secrets registered after the first `seen`, and how many there are now: a log that
/// can tell its reader to mask values (GitHub's `::add-mask::`) announces each once.
pub fn registered_since(seen: usize) -> (Vec<String>, usize) {
    let secrets = SECRETS.read().unwrap_or_else(|e| e.into_inner());
    let order = &secrets.in_order;
    (order.iter().skip(seen).cloned().collect(), order.len())
}

/// Returns `text` with every registered secret replaced by [`MASK`].
pub fn redact(text: &str) -> String {
    let secrets = SECRETS.read().unwrap_or_else(|e| e.into_inner());
    let mut out = text.to_string();
    for s in secrets.longest_first.iter() {
        if out.contains(s.as_str()) {
            out = replace(&out, s);
        }
    }
    out
}

/// `text` with `secret` replaced by [`MASK`]: everywhere, or for a short one only where it
/// stands as a token of its own.
fn replace(text: &str, secret: &str) -> String {
    if secret.len() >= SHORT {
        return text.replace(secret, MASK);
    }
    let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for (at, _) in text.match_indices(secret) {
        let end = at + secret.len();
        if alnum(text[..at].chars().next_back()) || alnum(text[end..].chars().next()) {
            continue;
        }
        out.push_str(&text[last..at]);
        out.push_str(MASK);
        last = end;
    }
    out.push_str(&text[last..]);
    out
}

/// Log text, masked: registered secrets, the value after a secret-looking or registered name
/// (`NAME=value`, `NAME: value`, `"NAME": "value"`), and URL passwords.
pub fn redact_log(text: &str) -> String {
    let exact = redact(text);
    let names = SECRETS
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .names
        .clone();
    let is_name = |n: &str| crate::secrets::is_secret_name(n) || names.iter().any(|k| k == n);
    let assigned = crate::secrets::mask_assignments(&exact, MASK, is_name);
    crate::secrets::mask_url_passwords(&assigned, MASK)
}

/// True for result fields that hold identifiers deckhand itself outputs (an image, a digest,
/// an ARN, a state), at any depth: they are written as they are, not masked, so a script
/// reading them gets them whole even when a registered value happens to equal one.
pub fn is_identifier_field(key: &str) -> bool {
    const IDENTIFIERS: &[&str] = &[
        "result",
        "image",
        "pinned",
        "digest",
        "sha",
        "tags",
        "task_definition_arn",
        "deployment_id",
        "service",
        "cluster",
        "rollback_target",
        "running_task_definition_arn",
        "state",
        "status",
        "rollout_state",
        "id",
        "name",
    ];
    IDENTIFIERS.contains(&key) || ["_arn", "_id", "_uri"].iter().any(|s| key.ends_with(s))
}

/// A result object for machines (stdout JSON, result files, step outputs): free-text strings
/// masked as log text, identifier fields ([`is_identifier_field`]) left as they are.
pub fn redact_result(value: &Value) -> Value {
    match value {
        Value::String(s) => Value::String(redact_log(s)),
        Value::Array(items) => Value::Array(items.iter().map(redact_result).collect()),
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(k, v)| {
                    let v = if is_identifier_field(k) {
                        v.clone()
                    } else {
                        redact_result(v)
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

/// A writer that masks registered secrets before passing bytes on to stderr.
///
/// Each `write` call is redacted on its own; the log formatter writes one whole event per
/// call, so a secret is never split across calls.
pub struct RedactingStderr;

impl Write for RedactingStderr {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        let clean = redact_log(&text);
        let stderr = io::stderr();
        let mut lock = stderr.lock();
        lock.write_all(clean.as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

/// A secret value: registered for masking when made, shown as `***` by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        let value = value.into();
        register(&value);
        Self(value)
    }

    /// The value itself, for the one place that must send it (the registry login).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(MASK)
    }
}

/// Prints a line on stdout (results for people and scripts), masked as log text.
pub fn println_stdout(line: &str) {
    println_stdout_as_is(&redact_log(line));
}

/// Prints a line on stdout that is masked already (a result object, field by field).
pub fn println_stdout_as_is(line: &str) {
    let stdout = io::stdout();
    let mut lock = stdout.lock();
    // A closed stdout (e.g. `| head -1`) is not worth a panic.
    let _ = writeln!(lock, "{line}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_registered_secrets_longest_first() {
        register("s3cr3t-value");
        register("s3cr3t-value-longer");
        let out = redact("a s3cr3t-value-longer and s3cr3t-value");
        assert_eq!(out, "a *** and ***");
    }

    #[test]
    fn short_values_are_masked_as_tokens_long_ones_anywhere() {
        register("qzx");
        register("qj");
        register("long-secret-9");
        let cases = [
            ("qzx", "***"),
            ("qzxdef", "qzxdef"),
            ("xqzx", "xqzx"),
            ("user qzx, pass qzx.", "user ***, pass ***."),
            ("DB_PASS=qzx", "DB_PASS=***"),
            ("-qzx-", "-***-"),
            ("qj qjd qj", "*** qjd ***"),
            ("xxlong-secret-9yy", "xx***yy"),
        ];
        for (text, want) in cases {
            assert_eq!(redact(text), want, "{text}");
        }
    }

    #[test]
    fn setting_words_are_not_registered_short_numbers_are() {
        for v in ["", "true", "Off", "NULL", "4071"] {
            register(v);
        }
        let (all, _) = registered_since(0);
        for v in ["", "true", "Off", "NULL"] {
            assert!(!all.iter().any(|s| s == v), "{v:?} registered");
        }
        assert!(all.iter().any(|s| s == "4071"), "{all:?}");
        assert_eq!(
            redact("AUTH_ENABLED=true PIN=4071, 40710 and x4071 stay"),
            "AUTH_ENABLED=true PIN=***, 40710 and x4071 stay"
        );
    }

    #[test]
    fn a_value_of_several_lines_is_masked_line_by_line_too() {
        register("-----BEGIN KEY-----\nmultiline-line-1\n}\n");
        let (all, _) = registered_since(0);
        assert!(all.iter().any(|s| s == "multiline-line-1"), "{all:?}");
        assert!(!all.iter().any(|s| s == "}"), "{all:?}");
        assert_eq!(redact("got multiline-line-1 {}"), "got *** {}");
    }

    #[test]
    fn log_text_masks_secret_names_registered_names_and_url_passwords() {
        register_name("FROM_SSM");
        let text = "FROM_SSM=s1\nDB_PASS=p2\nurl postgres://app:pw3@db/x\nAUTHOR=me\n";
        assert_eq!(
            redact_log(text),
            "FROM_SSM=***\nDB_PASS=***\nurl postgres://app:***@db/x\nAUTHOR=me\n"
        );
    }

    #[test]
    fn results_mask_free_text_and_keep_identifiers() {
        // A registered value that happens to equal an image tag and a host name.
        register("maskhost.example");
        register("v1-masktag");
        let result = serde_json::json!({
            "result": "failed",
            "image": "maskhost.example/web:v1-masktag",
            "pinned": "maskhost.example/web@sha256:1",
            "digest": "sha256:1",
            "reason": "could not pull maskhost.example/web:v1-masktag: DB_PASS=x rejected",
            "services": [{
                "service": "web",
                "task_definition_arn": "arn:aws:ecs:us-east-1:1:task-definition/maskhost.example:1",
                "deployment_id": "ecs-svc/maskhost.example",
                "action": "look at maskhost.example"
            }]
        });
        let out = redact_result(&result);
        assert_eq!(out["image"], result["image"]);
        assert_eq!(out["pinned"], result["pinned"]);
        assert_eq!(
            out["services"][0]["task_definition_arn"],
            result["services"][0]["task_definition_arn"]
        );
        assert_eq!(
            out["services"][0]["deployment_id"],
            result["services"][0]["deployment_id"]
        );
        assert_eq!(out["reason"], "could not pull ***/web:***: DB_PASS=***");
        assert_eq!(out["services"][0]["action"], "look at ***");
        let cases = [
            ("image", true),
            ("task_definition_arn", true),
            ("previous_task_definition_arn", true),
            ("repository_uri", true),
            ("deployment_id", true),
            ("state", true),
            ("reason", false),
            ("action", false),
            ("message", false),
            ("rollout_state_reason", false),
        ];
        for (key, want) in cases {
            assert_eq!(is_identifier_field(key), want, "{key}");
        }
    }
}
