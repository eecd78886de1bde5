//! The CI's OIDC token for `--role-to-assume`: which one the environment offers (a pure
//! decision), and reading it — GitHub's ID-token endpoint, a GitLab `id_tokens` variable, a
//! token file.

use std::path::PathBuf;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};

use crate::error::{Error, Kind, Result};

/// GitHub Actions sets these in a job with `permissions: id-token: write`.
pub const GITHUB_REQUEST_URL: &str = "ACTIONS_ID_TOKEN_REQUEST_URL";
pub const GITHUB_REQUEST_TOKEN: &str = "ACTIONS_ID_TOKEN_REQUEST_TOKEN";
/// The token file of AWS's own web-identity configuration.
pub const TOKEN_FILE: &str = "AWS_WEB_IDENTITY_TOKEN_FILE";

/// The audience GitHub's token is asked for, by default: what AWS's OIDC provider expects.
pub const DEFAULT_AUDIENCE: &str = "sts.amazonaws.com";

/// Where the web-identity token comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// GitHub Actions' ID-token endpoint, asked for a token with `audience`.
    Github {
        url: String,
        request_token: String,
        audience: String,
    },
    /// An environment variable holding the token (GitLab's `id_tokens:`).
    Variable { name: String },
    /// A file holding the token (`AWS_WEB_IDENTITY_TOKEN_FILE`).
    File { path: PathBuf },
}

impl TokenSource {
    /// How the log names it: "the GitHub Actions OIDC token".
    pub fn describe(&self) -> String {
        match self {
            TokenSource::Github { .. } => "the GitHub Actions OIDC token".into(),
            TokenSource::Variable { name } => format!("the OIDC token in ${name}"),
            TokenSource::File { path } => format!("the OIDC token in {}", path.display()),
        }
    }
}

/// The token source for `--role-to-assume` in an environment read through `env` (pure):
/// `--web-identity-token-env NAME` when given, else GitHub's endpoint when the job may ask it,
/// else `AWS_WEB_IDENTITY_TOKEN_FILE`. Without any, a usage error that says what to add.
pub fn token_source(
    token_env: Option<&str>,
    audience: &str,
    env: impl Fn(&str) -> Option<String>,
) -> Result<TokenSource> {
    let set = |name: &str| env(name).filter(|v| !v.trim().is_empty());
    if let Some(name) = token_env {
        let valid = !name.is_empty()
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(Error::usage(format!(
                "--web-identity-token-env {name:?} is not a variable name; give the name of the \
                 variable that holds the token, e.g. AWS_ID_TOKEN."
            )));
        }
        if set(name).is_none() {
            return Err(Error::usage(format!(
                "--web-identity-token-env names {name}, which is not set or empty. In GitLab CI, \
                 declare {name} under `id_tokens:` in the job, with `aud` {DEFAULT_AUDIENCE}."
            )));
        }
        return Ok(TokenSource::Variable {
            name: name.to_string(),
        });
    }
    if let Some(url) = set(GITHUB_REQUEST_URL) {
        let Some(request_token) = set(GITHUB_REQUEST_TOKEN) else {
            return Err(Error::usage(format!(
                "{GITHUB_REQUEST_URL} is set but {GITHUB_REQUEST_TOKEN} is not: deckhand cannot \
                 ask GitHub for the job's OIDC token. Give the job `permissions: id-token: write`."
            )));
        };
        return Ok(TokenSource::Github {
            url,
            request_token,
            audience: audience.to_string(),
        });
    }
    if let Some(path) = set(TOKEN_FILE) {
        return Ok(TokenSource::File { path: path.into() });
    }
    let is = |name: &str| env(name).is_some_and(|v| v == "true");
    let why = if is("GITHUB_ACTIONS") {
        "GitHub Actions gives this job no OIDC token. Add `permissions: id-token: write` (with \
         `contents: read`) to the job or the workflow."
            .to_string()
    } else if is("GITLAB_CI") {
        "in GitLab CI, declare an ID token under `id_tokens:` in the job (e.g. AWS_ID_TOKEN, \
         with `aud` sts.amazonaws.com) and pass --web-identity-token-env AWS_ID_TOKEN."
            .to_string()
    } else {
        format!(
            "give the job an OIDC token: in GitHub Actions `permissions: id-token: write`; in \
             GitLab CI an `id_tokens:` variable named by --web-identity-token-env; elsewhere \
             {TOKEN_FILE} naming a file that holds the token."
        )
    };
    Err(Error::usage(format!(
        "--role-to-assume needs the CI's OIDC token, and none was found: {why}"
    )))
}

/// Reads the token from its source. GitHub's endpoint is asked with a time bound and a few
/// tries through transient failures; a refusal is an error with GitHub's answer.
pub async fn fetch(source: &TokenSource) -> Result<String> {
    let token = match source {
        TokenSource::Github {
            url,
            request_token,
            audience,
        } => {
            let url = with_audience(url, audience);
            let tries = ExponentialBuilder::default()
                .with_jitter()
                .with_min_delay(Duration::from_millis(500))
                .with_max_times(2);
            (|| github(&url, request_token))
                .retry(tries)
                .sleep(tokio::time::sleep)
                .when(|e: &Error| e.is_transient())
                .await?
        }
        TokenSource::Variable { name } => std::env::var(name).unwrap_or_default(),
        TokenSource::File { path } => std::fs::read_to_string(path).map_err(|e| {
            Error::usage(format!(
                "cannot read the OIDC token file {}: {e}",
                path.display()
            ))
        })?,
    };
    let token = token.trim().to_string();
    crate::redact::register(&token);
    if token.is_empty() {
        return Err(Error::usage(format!(
            "{} is empty; the CI gave no token to assume the role with",
            source.describe()
        )));
    }
    Ok(token)
}

/// How long one request to GitHub's endpoint may take.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest answer read from GitHub's endpoint (a token is a few KiB).
const MAX_ANSWER: usize = 256 * 1024;

/// Why the request token may not be sent to `url` (pure): anything but https, except plain
/// http to a loopback host (a local stand-in for the endpoint).
pub fn insecure(url: &str) -> Option<String> {
    let lower = url.to_ascii_lowercase();
    if lower.starts_with("https://") {
        return None;
    }
    if let Some(rest) = lower.strip_prefix("http://") {
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let host = authority.rsplit('@').next().unwrap_or_default();
        let host = match host.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or_default(),
            None => host.split(':').next().unwrap_or_default(),
        };
        let loopback_ip = host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
        if host == "localhost" || loopback_ip {
            return None;
        }
    }
    Some(format!(
        "{GITHUB_REQUEST_URL} is not an https URL: deckhand sends the job's request token only \
         over https (plain http only to a loopback host)"
    ))
}

/// One GET of GitHub's ID-token endpoint: `{"value": "<token>"}`.
async fn github(url: &str, request_token: &str) -> Result<String> {
    use hyper::header::{ACCEPT, AUTHORIZATION, USER_AGENT};
    if let Some(why) = insecure(url) {
        return Err(Error::usage(why));
    }
    let unreachable = |why: String| {
        Error::failed(format!(
            "could not get the OIDC token from GitHub Actions ({why})"
        ))
        .with_kind(Kind::Unreachable)
    };
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_native_roots()
        .map_err(|e| Error::failed(format!("cannot load the system's CA certificates: {e}")))?
        .https_or_http()
        .enable_http1()
        .build();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build::<_, Empty<Bytes>>(connector);
    let request = hyper::Request::get(url)
        .header(AUTHORIZATION, format!("Bearer {request_token}"))
        .header(ACCEPT, "application/json; api-version=2.0")
        .header(USER_AGENT, concat!("deckhand/", env!("CARGO_PKG_VERSION")))
        .body(Empty::new())
        .map_err(|e| {
            Error::usage(format!(
                "{GITHUB_REQUEST_URL} is not a URL deckhand can ask ({e})"
            ))
        })?;
    let answer = async {
        let response = client
            .request(request)
            .await
            .map_err(|e| unreachable(super::describe(&e)))?;
        let status = response.status();
        let body = Limited::new(response.into_body(), MAX_ANSWER)
            .collect()
            .await
            .map_err(|e| unreachable(format!("the answer could not be read: {e}")))?
            .to_bytes();
        Ok::<_, Error>((status, body))
    };
    let (status, body) = tokio::time::timeout(ATTEMPT_TIMEOUT, answer)
        .await
        .map_err(|_| unreachable(format!("no answer in {}s", ATTEMPT_TIMEOUT.as_secs())))??;
    token_from_answer(status.as_u16(), &body)
}

/// The token in an answer of GitHub's endpoint, or why there is none (pure).
pub fn token_from_answer(status: u16, body: &[u8]) -> Result<String> {
    let text = String::from_utf8_lossy(body);
    if status != 200 {
        let said: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
        let said: String = said.chars().take(300).collect();
        let error = Error::failed(format!(
            "GitHub Actions refused the OIDC token request (HTTP {status}{}). Check that the job \
             has `permissions: id-token: write` and that --audience is one the role's trust \
             policy accepts.",
            if said.is_empty() {
                String::new()
            } else {
                format!(": {said}")
            }
        ));
        let transient = status == 429 || status >= 500;
        return Err(if transient {
            error.with_kind(Kind::Transient)
        } else {
            error
        });
    }
    let value = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v["value"].as_str().map(str::to_string))
        .filter(|v| !v.is_empty());
    value.ok_or_else(|| {
        Error::failed("GitHub Actions answered the OIDC token request without a token (`value`)")
            .with_kind(Kind::Transient)
    })
}

/// `url` with `audience=…` added to its query (pure).
pub fn with_audience(url: &str, audience: &str) -> String {
    let joiner = if url.contains('?') { '&' } else { '?' };
    format!("{url}{joiner}audience={}", percent_encode(audience))
}

/// `text` with everything but RFC 3986's unreserved characters percent-encoded (pure).
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_token_goes_only_over_https_or_to_loopback() {
        for ok in [
            "https://pipelines.actions.githubusercontent.com/x?api-version=2.0",
            "http://127.0.0.1:9/t",
            "http://localhost/t",
            "http://[::1]:80/t",
        ] {
            assert_eq!(insecure(ok), None, "{ok}");
        }
        for bad in [
            "http://pipelines.example.com/t",
            "http://127.0.0.1.example.com/t",
            "ftp://127.0.0.1/t",
            "http://localhost.example.com/t",
        ] {
            assert!(insecure(bad).is_some_and(|w| w.contains("https")), "{bad}");
        }
    }
    use crate::error::Exit;

    fn env_of<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn the_token_source_follows_the_environment() {
        let github = [
            (GITHUB_REQUEST_URL, "http://gh/token?api-version=2.0"),
            (GITHUB_REQUEST_TOKEN, "req"),
            ("GITHUB_ACTIONS", "true"),
        ];
        let gitlab = [("GITLAB_CI", "true"), ("AWS_ID_TOKEN", "eyJ.x.y")];
        let file = [(TOKEN_FILE, "/run/token")];
        let gh = TokenSource::Github {
            url: "http://gh/token?api-version=2.0".into(),
            request_token: "req".into(),
            audience: "sts.amazonaws.com".into(),
        };
        let var = TokenSource::Variable {
            name: "AWS_ID_TOKEN".into(),
        };
        let path = TokenSource::File {
            path: "/run/token".into(),
        };
        // (token env, environment, the source, or the words the error must hold)
        type Case<'a> = (
            Option<&'a str>,
            Vec<(&'a str, &'a str)>,
            std::result::Result<TokenSource, &'a str>,
        );
        let cases: Vec<Case> = vec![
            (None, github.to_vec(), Ok(gh.clone())),
            (Some("AWS_ID_TOKEN"), gitlab.to_vec(), Ok(var.clone())),
            // Named explicitly, the variable wins over GitHub's endpoint.
            (
                Some("AWS_ID_TOKEN"),
                vec![gitlab[1], github[0], github[1]],
                Ok(var),
            ),
            (None, file.to_vec(), Ok(path.clone())),
            (None, vec![file[0], ("GITHUB_ACTIONS", "true")], Ok(path)),
            (None, vec![github[0], github[1], file[0]], Ok(gh)),
            (
                None,
                vec![("GITHUB_ACTIONS", "true")],
                Err("permissions: id-token: write"),
            ),
            (
                None,
                vec![github[0], github[2]],
                Err("ACTIONS_ID_TOKEN_REQUEST_TOKEN is not"),
            ),
            (None, vec![(GITHUB_REQUEST_URL, " ")], Err("none was found")),
            (None, vec![("GITLAB_CI", "true")], Err("id_tokens:")),
            (
                Some("AWS_ID_TOKEN"),
                vec![("GITLAB_CI", "true")],
                Err("declare AWS_ID_TOKEN under `id_tokens:`"),
            ),
            (
                Some("AWS_ID_TOKEN"),
                vec![("AWS_ID_TOKEN", "")],
                Err("not set or empty"),
            ),
            (
                Some("AWS-ID"),
                gitlab.to_vec(),
                Err("is not a variable name"),
            ),
            (None, vec![], Err("AWS_WEB_IDENTITY_TOKEN_FILE")),
        ];
        for (token_env, vars, want) in cases {
            let got = token_source(token_env, DEFAULT_AUDIENCE, env_of(&vars));
            match (got, want) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{token_env:?} {vars:?}"),
                (Err(e), Err(words)) => {
                    assert_eq!(e.exit, Exit::Usage, "{}", e.message);
                    assert!(e.message.contains(words), "{vars:?}: {}", e.message);
                }
                (got, want) => panic!("{token_env:?} {vars:?}: {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn github_answers_are_read() {
        assert_eq!(
            token_from_answer(200, br#"{"count":1,"value":"eyJ.a.b"}"#).unwrap(),
            "eyJ.a.b"
        );
        let e = token_from_answer(403, b"audience not allowed\n").unwrap_err();
        assert_eq!(e.exit, Exit::Failed);
        assert!(!e.is_transient());
        assert!(
            e.message.contains("HTTP 403: audience not allowed"),
            "{}",
            e.message
        );
        assert!(e.message.contains("id-token: write"), "{}", e.message);
        assert!(token_from_answer(503, b"").unwrap_err().is_transient());
        assert!(token_from_answer(429, b"").unwrap_err().is_transient());
        assert!(token_from_answer(200, br#"{"value":""}"#).is_err());
        assert!(token_from_answer(200, b"not json").is_err());
    }

    #[test]
    fn an_https_client_can_be_made() {
        // The TLS configuration picks its crypto provider here: exactly one must be built in.
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_native_roots()
            .map(|b| b.https_or_http().enable_http1().build());
        assert!(connector.is_ok());
    }

    #[tokio::test]
    async fn a_token_file_is_read_trimmed_and_an_empty_one_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "eyJ.fromfile.sig\n").unwrap();
        let source = TokenSource::File { path: path.clone() };
        assert_eq!(fetch(&source).await.unwrap(), "eyJ.fromfile.sig");
        std::fs::write(&path, "\n").unwrap();
        assert_eq!(fetch(&source).await.unwrap_err().exit, Exit::Usage);
        let gone = TokenSource::File {
            path: dir.path().join("missing"),
        };
        let e = fetch(&gone).await.unwrap_err();
        assert!(
            e.message.contains("cannot read the OIDC token file"),
            "{}",
            e.message
        );
    }

    #[test]
    fn the_audience_joins_the_query() {
        assert_eq!(
            with_audience("https://gh/t?api-version=2.0", "sts.amazonaws.com"),
            "https://gh/t?api-version=2.0&audience=sts.amazonaws.com"
        );
        assert_eq!(
            with_audience("http://127.0.0.1:9/t", "a b&c/d"),
            "http://127.0.0.1:9/t?audience=a%20b%26c%2Fd"
        );
    }
}
