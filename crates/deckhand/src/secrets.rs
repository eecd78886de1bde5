//! What counts as a secret: secret-looking names, URL passwords, and the values in log text that follow a secret name (pure, table-tested).

use std::ops::Range;
use std::sync::RwLock;

/// Whole name segments that mark a secret.
const SECRET_SEGMENTS: &[&str] = &[
    "PASS",
    "PASSWD",
    "PASSWORD",
    "PASSWORDS",
    "PWD",
    "PASSPHRASE",
    "SECRET",
    "SECRETS",
    "TOKEN",
    "TOKENS",
    "KEY",
    "KEYS",
    "CREDENTIAL",
    "CREDENTIALS",
    "CREDS",
    "AUTH",
    "SK",
    "DSN",
    // Glued compounds.
    "APIKEY",
    "APIKEYS",
    "SECRETKEY",
    "ACCESSKEY",
    "PRIVATEKEY",
    "SIGNINGKEY",
    "AUTHTOKEN",
    "ACCESSTOKEN",
    "APITOKEN",
    "REFRESHTOKEN",
    "SESSIONTOKEN",
    "CLIENTSECRET",
];

/// Endings that mark a secret even glued to another word (`DBPASSWORD`, `GHTOKEN`); short
/// words such as KEY or PASS are not among them (MONKEY, COMPASS).
const SECRET_ENDINGS: &[&str] = &[
    "PASSWORD",
    "PASSWD",
    "PASSPHRASE",
    "SECRET",
    "TOKEN",
    "APIKEY",
];

/// Names (or single words) configured with `--secret-name`, `secret-names` or
/// `DECKHAND_SECRET_NAMES`.
static EXTRA: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// Sets the configured extra secret names (replacing any set before).
pub fn set_extra_names(names: Vec<String>) {
    *EXTRA.write().unwrap_or_else(|e| e.into_inner()) = names;
}

/// True for an environment variable or build-arg name whose value must not be shown: by its
/// segments (see [`looks_secret`]) or the configured extra names.
pub fn is_secret_name(name: &str) -> bool {
    let extra = EXTRA.read().unwrap_or_else(|e| e.into_inner());
    looks_secret(name, &extra)
}

/// The name's words, upper-cased: split on `_`, `-`, `.` and camelCase boundaries
/// (`dbPassword` → DB, PASSWORD; `APIKey` → API, KEY).
pub fn segments(name: &str) -> Vec<String> {
    let mut out = Vec::new();
    for part in name.split(['_', '-', '.']) {
        let chars: Vec<char> = part.chars().collect();
        let mut word = String::new();
        for (i, &c) in chars.iter().enumerate() {
            let prev = i.checked_sub(1).map(|p| chars[p]);
            let next = chars.get(i + 1).copied();
            let boundary = c.is_uppercase()
                && prev.is_some_and(|p| {
                    p.is_lowercase()
                        || p.is_ascii_digit()
                        || (p.is_uppercase() && next.is_some_and(char::is_lowercase))
                });
            if boundary && !word.is_empty() {
                out.push(std::mem::take(&mut word).to_uppercase());
            }
            word.push(c);
        }
        if !word.is_empty() {
            out.push(word.to_uppercase());
        }
    }
    out
}

/// True when a segment of `name` is a secret word (PASSWORD, TOKEN, KEY, AUTH, SK, DSN, …;
/// AUTH only whole, so AUTHOR is not), or `name` is one of `extra`: an extra of one word also
/// matches as a segment (HMAC matches APP_HMAC), a longer one matches the whole name in any
/// spelling (MY_VAR matches my-var and myVar). The shell's `PWD` and `OLDPWD` (directories)
/// are not secrets; `MYSQL_PWD` is.
pub fn looks_secret(name: &str, extra: &[String]) -> bool {
    if name == "PWD" || name == "OLDPWD" {
        return false;
    }
    let words = segments(name);
    if words.iter().any(|w| {
        SECRET_SEGMENTS.contains(&w.as_str()) || SECRET_ENDINGS.iter().any(|e| w.ends_with(e))
    }) {
        return true;
    }
    extra.iter().any(|x| {
        let x = segments(x);
        match x.as_slice() {
            [] => false,
            [one] => words.contains(one),
            _ => x == words,
        }
    })
}

/// The words that are settings whatever a variable is named (`AUTH_ENABLED=true`,
/// `AUTH_ENABLED=1`), never masked: were such a value masked wherever it stands, as a secret's
/// is, logs would lose every "on", "none" and "1 of 1 running" they say. No secret is one digit.
pub const SETTING_WORDS: &[&str] = &[
    "true", "false", "yes", "no", "on", "off", "none", "null", "0", "1",
];

/// Whether a secret's value is masked: any value but an empty one and the literal
/// [`SETTING_WORDS`] (any case), at any length and of any form, digits too (`DB_PASS=1234`).
/// A short value is masked only where it stands alone ([`crate::redact::SHORT`]), so unrelated
/// text is not shredded.
pub fn worth_masking(value: &str) -> bool {
    let v = value.trim();
    !(v.is_empty() || SETTING_WORDS.iter().any(|s| v.eq_ignore_ascii_case(s)))
}

/// Where the passwords of `scheme://user:password@host` URLs are in `text`.
pub fn url_passwords(text: &str) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(at) = text[from..].find("://") {
        let start = from + at + 3;
        // The authority ends where the path, query or fragment (or the text) begins.
        let end = text[start..]
            .find(|c: char| "/?#\"'<>`".contains(c) || c.is_whitespace())
            .map_or(text.len(), |e| start + e);
        let authority = &text[start..end];
        if let Some(userinfo) = authority.rfind('@').map(|a| &authority[..a]) {
            if let Some(colon) = userinfo.find(':') {
                if colon + 1 < userinfo.len() {
                    out.push(start + colon + 1..start + userinfo.len());
                }
            }
        }
        from = end.max(start);
    }
    out
}

/// The values among `(name, value)` pairs (environment variables, build args) to mask: those
/// of secret-looking names, and the password of any URL in any value; not the empty value and
/// the setting words ([`worth_masking`]).
pub fn values_to_mask<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Vec<String> {
    let mut out = Vec::new();
    for (name, value) in pairs {
        if is_secret_name(name) {
            out.push(value.to_string());
        }
        for r in url_passwords(value) {
            out.push(value[r].to_string());
        }
    }
    out.retain(|v| worth_masking(v));
    out
}

/// `text` with every URL password replaced by `mask`.
pub fn mask_url_passwords(text: &str, mask: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for r in url_passwords(text) {
        out.push_str(&text[last..r.start]);
        out.push_str(mask);
        last = r.end;
    }
    out.push_str(&text[last..]);
    out
}

fn is_name_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"_.-".contains(&c)
}

/// Whether `name` has a lower-case letter followed by an upper-case one (`GetToken`,
/// `apiKey`): an identifier of code, not a variable as logs write them.
fn mixed_case(name: &str) -> bool {
    name.as_bytes()
        .windows(2)
        .any(|w| w[0].is_ascii_lowercase() && w[1].is_ascii_uppercase())
}

/// `text` (log lines) with the value after each secret name replaced by `mask`: `NAME=value`,
/// `export NAME=value`, `NAME: value`, `"NAME": "value"`, where `is_name(NAME)`. A quoted value
/// ends at its closing quote; an unquoted one runs to the end of the line. Empty values and
/// setting words ([`worth_masking`]), ARNs (`arn:…`, e.g. a secret's `valueFrom`) and
/// values masked already stay.
pub fn mask_assignments(text: &str, mask: &str, is_name: impl Fn(&str) -> bool) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut i = 0;
    while i < b.len() {
        if !is_name_char(b[i]) || (i > 0 && is_name_char(b[i - 1])) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && is_name_char(b[i]) {
            i += 1;
        }
        let name = &text[start..i];
        // `<KEY=VALUE>`: a placeholder in a usage text.
        let placeholder = start > 0 && b[start - 1] == b'<';
        let quote = (start > 0 && (b[start - 1] == b'"' || b[start - 1] == b'\''))
            .then(|| b[start - 1])
            .filter(|q| b.get(i) == Some(q));
        let mut j = i + usize::from(quote.is_some());
        let skip_blanks = |mut k: usize| {
            while k < b.len() && (b[k] == b' ' || b[k] == b'\t') {
                k += 1;
            }
            k
        };
        let value_at = match b.get(j) {
            Some(b'=') if quote.is_none() => Some(j + 1),
            Some(b':') if quote.is_some() => Some(skip_blanks(j + 1)),
            // Not after an API operation's name ("ECR GetAuthorizationToken: AccessDenied…"):
            // a variable or setting in a log is written in one case, `db_pass: …`.
            Some(b':') if matches!(b.get(j + 1), Some(b' ' | b'\t')) && !mixed_case(name) => {
                Some(skip_blanks(j + 1))
            }
            _ => None,
        };
        let Some(v) = value_at.filter(|_| !placeholder && is_name(name)) else {
            continue;
        };
        j = v;
        let (value, after) = match b.get(j) {
            Some(&q @ (b'"' | b'\'')) => {
                let mut k = j + 1;
                while k < b.len() && b[k] != q && b[k] != b'\n' {
                    k += if b[k] == b'\\' && q == b'"' { 2 } else { 1 };
                }
                let k = k.min(b.len());
                (j + 1..k, k)
            }
            _ => {
                let mut k = j;
                while k < b.len() && b[k] != b'\n' && b[k] != b'\r' {
                    k += 1;
                }
                (j..k, k)
            }
        };
        let shown = &text[value.clone()];
        if worth_masking(shown)
            && !shown.starts_with("arn:")
            && !shown.starts_with(mask)
            && !is_workflow_permission(name, shown)
        {
            out.push_str(&text[copied..value.start]);
            out.push_str(mask);
            copied = value.end;
        }
        i = after.max(i);
    }
    out.push_str(&text[copied..]);
    out
}

/// `id-token: write`: a GitHub workflow's permission (as deckhand's advice names it), not a
/// token's value.
fn is_workflow_permission(name: &str, value: &str) -> bool {
    let word = value
        .split(|c: char| !c.is_ascii_alphanumeric())
        .next()
        .unwrap_or_default();
    name.eq_ignore_ascii_case("id-token") && ["read", "write", "none"].contains(&word)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_judged_by_their_segments() {
        let secret = [
            "DB_PASS",
            "DATABASE_PASSWORD",
            "SIGNING_KEY",
            "STRIPE_SK",
            "SENTRY_DSN",
            "GITHUB_TOKEN",
            "AWS_SECRET_ACCESS_KEY",
            "API_KEY",
            "apiKey",
            "dbPassword",
            "NPM_AUTH_TOKEN",
            "AUTH",
            "BASIC_AUTH",
            "PRIVATE_KEY",
            "CLIENT_SECRET",
            "MYSQL_PWD",
            "GPG_PASSPHRASE",
            "CREDENTIALS",
            "APIKEY",
            "SECRETKEY",
            "client-secret",
            "oauth.clientSecret",
            "APIKey",
            "x-api-key",
            "DBPASSWORD",
            "ghToken",
            "REDIS_PASSWD",
            "GOOGLE_CREDENTIALS",
            "SLACK_TOKENS",
            "AccessToken",
        ];
        for name in secret {
            assert!(looks_secret(name, &[]), "{name} should be secret");
        }
        let plain = [
            "AUTHOR",
            "AUTHOR_NAME",
            "KEYBOARD_LAYOUT",
            "MONKEY",
            "PASSENGER_COUNT",
            "SKU",
            "DESKTOP",
            "TURKEY",
            "COMPASS",
            "BYPASS_CACHE",
            "DISK_SIZE",
            "LOG_LEVEL",
            "AUTHORITY",
            "PASSAGE",
            "HOCKEY_TEAM",
            "PORT",
            "RAILS_ENV",
            "valueFrom",
            "PWD",
            "OLDPWD",
        ];
        for name in plain {
            assert!(!looks_secret(name, &[]), "{name} should not be secret");
        }
    }

    #[test]
    fn segments_split_on_separators_and_case() {
        let cases: [(&str, &[&str]); 6] = [
            ("DB_PASS", &["DB", "PASS"]),
            ("dbPassword", &["DB", "PASSWORD"]),
            ("APIKey", &["API", "KEY"]),
            ("x-api.key", &["X", "API", "KEY"]),
            ("OAuth2Token", &["O", "AUTH2", "TOKEN"]),
            ("AUTHOR", &["AUTHOR"]),
        ];
        for (name, want) in cases {
            assert_eq!(segments(name), want, "{name}");
        }
    }

    #[test]
    fn extra_names_are_whole_names_or_single_words() {
        let extra = vec!["HMAC".to_string(), "MY_SPECIAL_VAR".to_string()];
        let cases = [
            ("HMAC", true),
            ("APP_HMAC", true),
            ("hmacValue", true),
            ("MY_SPECIAL_VAR", true),
            ("my-special-var", true),
            ("mySpecialVar", true),
            ("MY_SPECIAL", false),
            ("MY_SPECIAL_VAR_2", false),
            ("HMACS", false),
        ];
        for (name, want) in cases {
            assert_eq!(looks_secret(name, &extra), want, "{name}");
        }
    }

    #[test]
    fn only_empty_values_and_setting_words_are_not_worth_masking() {
        let cases = [
            ("", false),
            ("  ", false),
            ("true", false),
            ("FALSE", false),
            ("Yes", false),
            ("no", false),
            ("on", false),
            ("off", false),
            ("none", false),
            ("null", false),
            (" true ", false),
            // Digits are a password like any other, at any length.
            ("1234", true),
            ("0", false), // a switch, as the words are
            ("1", false),
            ("2", true),
            ("01", true),
            ("3600", true),
            ("12345", true),
            ("123456", true),
            ("pw", true),
            ("x", true),
            ("Zq7", true),
            ("hunter2", true),
            // Only the words themselves.
            ("truest", true),
            ("true1", true),
            ("not-null", true),
            ("on off", true),
            ("empty", true),
            ("0.5", true),
        ];
        for (value, want) in cases {
            assert_eq!(worth_masking(value), want, "{value:?}");
        }
    }

    #[test]
    fn url_passwords_are_found() {
        let cases = [
            ("postgres://app:hunter2@db/x", Some("hunter2")),
            ("DATABASE_URL=postgres://app:pw@db:5432/x?ssl=1", Some("pw")),
            ("redis://:s3cr3t@cache:6379", Some("s3cr3t")),
            ("see https://user:p@ss:w0rd@host/path", Some("p@ss:w0rd")),
            ("https://host/path@x:y", None),
            ("https://user@host/", None),
            ("https://user:@host/", None),
            ("http://127.0.0.1:5000/v2/", None),
            ("no url here: a:b@c", None),
        ];
        for (text, want) in cases {
            let got: Vec<&str> = url_passwords(text).into_iter().map(|r| &text[r]).collect();
            assert_eq!(got, want.into_iter().collect::<Vec<_>>(), "{text}");
        }
        assert_eq!(
            mask_url_passwords("a mysql://u:pw@h/d and amqp://g:guest@mq", "***"),
            "a mysql://u:***@h/d and amqp://g:***@mq"
        );
    }

    #[test]
    fn values_after_secret_names_are_masked_in_log_lines() {
        let is = |n: &str| looks_secret(n, &[]) || n == "FROM_SECRETS";
        let cases = [
            ("DB_PASS=hunter2", "DB_PASS=***"),
            ("GPG_PASSPHRASE=correct horse battery", "GPG_PASSPHRASE=***"),
            ("export API_KEY=abc123", "export API_KEY=***"),
            (
                "migrate app | STRIPE_SK=sk_live_1",
                "migrate app | STRIPE_SK=***",
            ),
            ("FROM_SECRETS=x1", "FROM_SECRETS=***"),
            ("token: abcdef", "token: ***"),
            ("SIGNING_KEY:\tzzz", "SIGNING_KEY:\t***"),
            (
                r#"{"apiKey": "k-1", "user": "bob"}"#,
                r#"{"apiKey": "***", "user": "bob"}"#,
            ),
            (r#"{"apiKey":"a\"b","n":1}"#, r#"{"apiKey":"***","n":1}"#),
            ("DB_PASSWORD='it is'", "DB_PASSWORD='***'"),
            ("a\nDB_PASS=x\nAUTHOR=me\n", "a\nDB_PASS=***\nAUTHOR=me\n"),
            ("AUTHOR=someone-visible", "AUTHOR=someone-visible"),
            ("AUTH_ENABLED=true", "AUTH_ENABLED=true"),
            ("DB_PASS=1234", "DB_PASS=***"),
            ("DB_PASS=7", "DB_PASS=***"),
            ("TOKEN_TTL=3600", "TOKEN_TTL=***"),
            ("DB_PASS=Off", "DB_PASS=Off"),
            (r#"{"apiKey": "42"}"#, r#"{"apiKey": "***"}"#),
            (r#"{"apiKey": "null"}"#, r#"{"apiKey": "null"}"#),
            ("DB_PASS=", "DB_PASS="),
            (
                r#""name": "DB_PASS", "valueFrom": "arn:aws:ssm:us-east-1:1:parameter/db""#,
                r#""name": "DB_PASS", "valueFrom": "arn:aws:ssm:us-east-1:1:parameter/db""#,
            ),
            ("SIGNING_KEY=arn:aws:kms:x", "SIGNING_KEY=arn:aws:kms:x"),
            (
                "host:port redis:6379 key:value",
                "host:port redis:6379 key:value",
            ),
            (
                "MONKEY=banana PASSENGER_COUNT=3",
                "MONKEY=banana PASSENGER_COUNT=3",
            ),
            ("DB_PASS = spaced", "DB_PASS = spaced"),
            ("PWD=/app", "PWD=/app"),
            ("'--build-arg <KEY=VALUE>'", "'--build-arg <KEY=VALUE>'"),
            ("MYSQL_PWD=root", "MYSQL_PWD=***"),
            (
                "ECR GetAuthorizationToken: AccessDeniedException: not authorized",
                "ECR GetAuthorizationToken: AccessDeniedException: not authorized",
            ),
            ("api_token: t-1", "api_token: ***"),
            (
                "add `permissions: id-token: write` to the job",
                "add `permissions: id-token: write` to the job",
            ),
            ("id-token: eyJhbGciOi.x.y", "id-token: ***"),
            (
                "| **run FROM_SECRETS=*** x** |",
                "| **run FROM_SECRETS=*** x** |",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(mask_assignments(text, "***", is), want, "{text}");
        }
    }
}
