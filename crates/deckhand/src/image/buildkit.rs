//! A BuildKit build through the engine's `/build`, under a session that serves the context,
//! the Dockerfile, build secrets and the registry login, with BuildKit's progress shown as steps
//! and the image's inline cache written for the next build.

use base64::Engine as _;
use http_body_util::BodyExt;
use prost::Message as _;
use serde::Deserialize;
use tracing::debug;

use super::build::BuildSpec;
use super::context::{Context, Stats};
use super::filesync::Dirs;
use super::progress::{Progress, Shown};
use super::push::Login;
use super::session::{self, Provided};
use super::wire::{self, Address, Lines};
use crate::error::{Error, Result};
use crate::redact::Secret;
use crate::report::Reporter;
use bollard_buildkit_proto::moby::buildkit::v1::StatusResponse;
use std::collections::HashMap;
use std::sync::Arc;

/// The build argument that makes the engine write cache metadata into the image's config, so
/// a build on another machine can use the pushed image as its cache.
pub const INLINE_CACHE_ARG: &str = "BUILDKIT_INLINE_CACHE";

/// The `/build` query for a BuildKit build whose context and Dockerfile come over the session
/// (pure).
pub fn query(spec: &BuildSpec, dockerfile: &str, session: &str) -> String {
    let mut q: Vec<(String, String)> = vec![
        ("version".into(), "2".into()),
        ("session".into(), session.into()),
        ("remote".into(), "client-session".into()),
        ("dockerfile".into(), dockerfile.into()),
    ];
    for tag in &spec.tags {
        q.push(("t".into(), tag.clone()));
    }
    let mut args: std::collections::BTreeMap<&str, &str> = spec
        .build_args
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    // Written by every build, `--no-cache` ones too: the next build may use it.
    args.insert(INLINE_CACHE_ARG, "1");
    q.push(("buildargs".into(), json(&args)));
    let labels: std::collections::BTreeMap<_, _> = spec.labels.iter().collect();
    q.push(("labels".into(), json(&labels)));
    if let Some(target) = &spec.target {
        q.push(("target".into(), target.clone()));
    }
    if let Some(platform) = &spec.platform {
        q.push(("platform".into(), platform.clone()));
    }
    if let Some(mode) = &spec.network {
        q.push(("networkmode".into(), mode.clone()));
    }
    if spec.no_cache {
        q.push(("nocache".into(), "1".into()));
    } else if !spec.cache_from.is_empty() {
        q.push(("cachefrom".into(), json(&spec.cache_from)));
    }
    let pairs: Vec<String> = q
        .iter()
        .map(|(k, v)| format!("{k}={}", wire::encode(v)))
        .collect();
    format!("/build?{}", pairs.join("&"))
}

fn json(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).expect("maps of strings serialise")
}

/// One message of the engine's build stream.
#[derive(Debug, Deserialize)]
struct Message {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    aux: Option<serde_json::Value>,
    #[serde(default)]
    stream: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default, rename = "errorDetail")]
    error_detail: Option<ErrorDetail>,
}

#[derive(Debug, Deserialize)]
struct ErrorDetail {
    #[serde(default)]
    message: Option<String>,
}

/// What one message means.
#[derive(Debug, PartialEq)]
pub enum Read {
    Status(Box<StatusResponse>),
    ImageId(String),
    Text(String),
    Failed(String),
    Nothing,
}

/// Reads one line of the stream (pure).
pub fn read(line: &[u8]) -> Read {
    let Ok(m) = serde_json::from_slice::<Message>(line) else {
        return Read::Text(String::from_utf8_lossy(line).into_owned());
    };
    if let Some(message) = m.error_detail.and_then(|d| d.message).or(m.error) {
        return Read::Failed(message);
    }
    match (m.id.as_deref(), m.aux) {
        (Some("moby.buildkit.trace"), Some(serde_json::Value::String(b64))) => {
            match base64::engine::general_purpose::STANDARD
                .decode(b64.as_bytes())
                .ok()
                .and_then(|bytes| StatusResponse::decode(bytes.as_slice()).ok())
            {
                Some(status) => Read::Status(Box::new(status)),
                None => Read::Nothing,
            }
        }
        (Some("moby.image.id"), Some(aux)) => aux
            .get("ID")
            .and_then(|v| v.as_str())
            .map(|id| Read::ImageId(id.to_string()))
            .unwrap_or(Read::Nothing),
        _ => match m.stream {
            Some(text) if !text.trim().is_empty() => Read::Text(text.trim_end().to_string()),
            _ => Read::Nothing,
        },
    }
}

/// Builds with BuildKit; returns the image id, what the context held and the steps' tally.
pub async fn build(
    r: &Reporter,
    address: &Address,
    context: Context,
    spec: &BuildSpec,
    secrets: HashMap<String, Secret>,
    login: &Login,
) -> Result<(String, Stats, Progress)> {
    let engine = wire_error(address);
    let dirs = Arc::new(Dirs::new(context));
    let dockerfile = dirs.dockerfile_name.clone();
    let provided = Provided {
        secrets,
        login: login.clone(),
        files: dirs.clone(),
    };
    let session = session::open(address, provided).await.map_err(&engine)?;
    let request = wire::request("POST", &query(spec, &dockerfile, &session.id))
        .body(wire::empty())
        .map_err(|e| Error::failed(format!("could not make the build request: {e}")))?;
    let response = wire::send(address, request).await.map_err(&engine)?;
    let status = response.status();
    let mut body = response.into_body();
    let mut progress = Progress::new(tracing::enabled!(tracing::Level::DEBUG));
    let mut lines = Lines::default();
    let mut image_id = None;
    let mut failure: Option<String> = None;
    let mut refused = Vec::new();
    loop {
        let frame = match body.frame().await {
            None => break,
            Some(Ok(frame)) => frame,
            Some(Err(e)) => {
                failure.get_or_insert(format!("the engine's build stream broke: {e}"));
                break;
            }
        };
        let Ok(chunk) = frame.into_data() else {
            continue;
        };
        if !status.is_success() {
            refused.extend_from_slice(&chunk);
            continue;
        }
        for line in lines.feed(&chunk) {
            handle(r, read(&line), &mut progress, &mut image_id, &mut failure);
        }
    }
    if let Some(line) = lines.finish() {
        handle(r, read(&line), &mut progress, &mut image_id, &mut failure);
    }
    drop(session);
    if !status.is_success() {
        let text = String::from_utf8_lossy(&refused);
        let message = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| {
                v.get("message")
                    .and_then(|m| m.as_str())
                    .map(str::to_string)
            })
            .unwrap_or_else(|| text.trim().to_string());
        return Err(Error::failed(format!(
            "the Docker engine refused the BuildKit build (HTTP {status}): {message}"
        )));
    }
    let stats = *dirs.stats.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(message) = failure {
        return Err(failure_error(&progress, &message));
    }
    let image_id = image_id.ok_or_else(|| Error::failed("the build ended without an image id"))?;
    Ok((image_id, stats, progress))
}

fn handle(
    r: &Reporter,
    read: Read,
    progress: &mut Progress,
    image_id: &mut Option<String>,
    failure: &mut Option<String>,
) {
    match read {
        Read::Status(status) => {
            for shown in progress.feed(*status) {
                match shown {
                    Shown::Line(line) => r.output(format!("  {line}")),
                    Shown::Warning(w) => r.warn(w),
                }
            }
        }
        Read::ImageId(id) => *image_id = Some(id),
        Read::Text(text) => debug!("build: {text}"),
        Read::Failed(message) => {
            failure.get_or_insert(message);
        }
        Read::Nothing => {}
    }
}

/// The error a person reads when the build fails: the step, BuildKit's words, the step's last
/// lines (pure).
pub fn failure_error(progress: &Progress, message: &str) -> Error {
    let message = message.trim();
    match progress.failed() {
        Some(failed) => {
            let mut text = format!("the image build failed at {}\n  {message}", failed.step);
            if !failed.tail.is_empty() {
                text.push_str("\n  its last output:");
                for line in &failed.tail {
                    text.push_str(&format!("\n    {line}"));
                }
            }
            text.push_str("\nFix the Dockerfile or the context and run again.");
            Error::failed(text)
        }
        None => Error::failed(format!(
            "the image build failed: {message}\nFix the Dockerfile or the context and run again."
        )),
    }
}

fn wire_error(address: &Address) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| {
        Error::failed(format!(
            "cannot reach the Docker engine at {address:?} for a BuildKit build: {e}. Start the \
             Docker daemon, set DOCKER_HOST to where it listens, or pass --builder legacy."
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> BuildSpec {
        BuildSpec {
            tags: vec!["r/app:abc".into(), "r/app:latest".into()],
            build_args: HashMap::from([("A".to_string(), "1 2".to_string())]),
            target: Some("prod".into()),
            labels: HashMap::new(),
            platform: Some("linux/arm64".into()),
            cache_from: vec!["r/app:old".into()],
            no_cache: false,
            network: Some("none".into()),
        }
    }

    #[test]
    fn the_query_asks_for_buildkit_under_the_session_with_inline_cache_and_imports() {
        let q = query(&spec(), "Dockerfile", "s1");
        assert!(q.starts_with(
            "/build?version=2&session=s1&remote=client-session&dockerfile=Dockerfile&"
        ));
        assert!(q.contains("&t=r%2Fapp%3Aabc&t=r%2Fapp%3Alatest&"));
        assert!(q.contains(&format!(
            "buildargs={}",
            wire::encode(r#"{"A":"1 2","BUILDKIT_INLINE_CACHE":"1"}"#)
        )));
        assert!(q.contains("&target=prod&platform=linux%2Farm64&networkmode=none&"));
        assert!(q.ends_with(&format!("cachefrom={}", wire::encode(r#"["r/app:old"]"#))));
        assert!(!q.contains("nocache"));
    }

    #[test]
    fn no_cache_drops_the_imports_and_still_writes_the_inline_cache() {
        let s = BuildSpec {
            no_cache: true,
            ..spec()
        };
        let q = query(&s, "Dockerfile", "s1");
        assert!(q.ends_with("&nocache=1"));
        assert!(!q.contains("cachefrom"));
        assert!(q.contains("BUILDKIT_INLINE_CACHE"));
    }

    #[test]
    fn stream_messages_are_read() {
        let status = StatusResponse {
            vertexes: vec![bollard_buildkit_proto::moby::buildkit::v1::Vertex {
                digest: "d".into(),
                name: "[1/1] RUN x".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let b64 = base64::engine::general_purpose::STANDARD.encode(status.encode_to_vec());
        let line = format!(r#"{{"id":"moby.buildkit.trace","aux":"{b64}"}}"#);
        assert_eq!(read(line.as_bytes()), Read::Status(Box::new(status)));
        assert_eq!(
            read(br#"{"id":"moby.image.id","aux":{"ID":"sha256:abc"}}"#),
            Read::ImageId("sha256:abc".into())
        );
        assert_eq!(
            read(br#"{"errorDetail":{"message":"exit code: 2"},"error":"exit code: 2"}"#),
            Read::Failed("exit code: 2".into())
        );
        assert_eq!(read(br#"{"error":"boom"}"#), Read::Failed("boom".into()));
        assert_eq!(read(br#"{"stream":"\n"}"#), Read::Nothing);
        assert_eq!(read(b"not json"), Read::Text("not json".into()));
    }
}
