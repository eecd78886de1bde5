//! The wire: AWS JSON 1.1 on `POST /` routed by `X-Amz-Target`, and STS's query protocol, so
//! unmodified AWS SDKs and the aws CLI talk to the sandbox with only `AWS_ENDPOINT_URL` set.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde_json::{json, Value};
use tracing::debug;

use super::ecr;
use super::ecs::{self, ApiError};
use super::faults::{Fate, Faults};
use super::model::Mode;
use super::Shared;

/// The largest request body accepted (task definitions are small).
const MAX_BODY: usize = 4 * 1024 * 1024;

const ECS_PREFIX: &str = "AmazonEC2ContainerServiceV20141113.";
const ECR_PREFIX: &str = "AmazonEC2ContainerRegistry_V20150921.";
const CODEDEPLOY_PREFIX: &str = super::codedeploy::PREFIX;

/// Returned to hyper to close a connection with no answer (an injected fault).
#[derive(Debug)]
pub struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by fault injection")
    }
}

impl std::error::Error for Dropped {}

/// Answers one HTTP request: the control endpoint, or an API call (subject to faults).
pub async fn serve(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Dropped> {
    if req.uri().path().starts_with("/_sandbox/") {
        return Ok(control(&shared, req).await);
    }
    if req.uri().path().starts_with("/v2") {
        return Ok(super::registry::serve(&shared, req).await);
    }
    if let Some(key) = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(access_key)
    {
        *shared
            .access_keys
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key.to_string())
            .or_default() += 1;
    }
    let target = req
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    // The whole request arrives before any fault: a lost answer is lost after the call.
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return Ok(error(&ApiError::new(
                "SerializationException",
                "the request body could not be read",
            )))
        }
    };
    let operation = operation(target.as_deref(), &body);
    let faults = shared
        .faults
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let applies = faults.applies_to(&operation);
    if applies && faults.latency_ms > 0 {
        tokio::time::sleep(faults.latency()).await;
    }
    match faults.fate_of(&operation, rand::random::<f64>()) {
        Fate::Serve => {}
        Fate::Drop => return Err(Dropped),
        Fate::LoseAnswer => {
            // Applied like any call; the answer is then withheld and the connection closed.
            let _applied = api(shared, target.as_deref(), &body).await;
            debug!("sandbox: {operation} applied, its answer dropped");
            return Err(Dropped);
        }
        Fate::Throttle => {
            return Ok(error(&ApiError::new(
                "ThrottlingException",
                "Rate exceeded",
            )))
        }
        Fate::ServerError => {
            let mut r = error(&ApiError::new("ServerException", "injected server error"));
            *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            return Ok(r);
        }
    }
    Ok(api(shared, target.as_deref(), &body).await)
}

/// The access key id a SigV4 `Authorization` header names:
/// `AWS4-HMAC-SHA256 Credential=AKID/20250101/us-east-1/ecs/aws4_request, SignedHeaders=…`.
fn access_key(authorization: &str) -> Option<&str> {
    let rest = authorization.strip_prefix("AWS4-HMAC-SHA256 ")?;
    let credential = rest
        .split(',')
        .map(str::trim)
        .find_map(|part| part.strip_prefix("Credential="))?;
    credential.split('/').next().filter(|k| !k.is_empty())
}

/// The operation a call names: the part of `X-Amz-Target` after the service's prefix
/// (`UpdateService`), or STS's `Action` (`GetCallerIdentity`).
fn operation(target: Option<&str>, body: &[u8]) -> String {
    match target {
        Some(t) => t.split_once('.').map_or(t, |(_, op)| op).to_string(),
        None => query_action(body),
    }
}

/// The `Action` of a query-protocol form body.
fn query_action(body: &[u8]) -> String {
    String::from_utf8_lossy(body)
        .split('&')
        .find_map(|kv| kv.strip_prefix("Action="))
        .unwrap_or_default()
        .to_string()
}

/// `GET|POST /_sandbox/faults` reads or sets the faults; `GET|DELETE /_sandbox/calls` reads or
/// clears the count of API calls answered, by operation (and `ECS.DescribeServices.services`,
/// the services those calls named); `POST /_sandbox/reset` forgets all
/// state and removes the sandbox's containers; `GET|POST /_sandbox/alarms` reads or sets a
/// CloudWatch alarm's state (`{"name": …, "state": "ALARM"}`); `GET|POST /_sandbox/hooks`
/// reads or sets how a CodeDeploy hook function ends (`{"function": NAME_OR_ARN, "result":
/// "Failed" | "Succeeded"}`; a function not named succeeds).
async fn control(shared: &Shared, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    let body = Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    match (method.as_str(), path.as_str()) {
        ("GET", "/_sandbox/faults") => {
            let faults = shared
                .faults
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            plain(
                StatusCode::OK,
                &serde_json::to_string(&faults).unwrap_or_default(),
            )
        }
        ("POST", "/_sandbox/faults") => match serde_json::from_slice::<Faults>(&body) {
            Ok(f) => match f.validate() {
                Ok(()) => {
                    let body = serde_json::to_string(&f).unwrap_or_default();
                    *shared.faults.lock().unwrap_or_else(|e| e.into_inner()) = f;
                    plain(StatusCode::OK, &body)
                }
                Err(e) => plain(StatusCode::BAD_REQUEST, &json!({"error": e}).to_string()),
            },
            Err(e) => plain(
                StatusCode::BAD_REQUEST,
                &json!({"error": e.to_string()}).to_string(),
            ),
        },
        ("GET", "/_sandbox/calls") => {
            let calls = shared
                .calls
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            plain(StatusCode::OK, &json!(calls).to_string())
        }
        ("DELETE", "/_sandbox/calls") => {
            shared
                .calls
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clear();
            plain(StatusCode::OK, "{}")
        }
        ("POST", "/_sandbox/reset") => {
            shared.reset().await;
            plain(StatusCode::OK, "{}")
        }
        // How answers report what runs (model::Mode), read or replaced whole.
        ("GET", "/_sandbox/mode") => {
            let mode = shared.state.lock().await.mode;
            plain(
                StatusCode::OK,
                &serde_json::to_string(&mode).unwrap_or_default(),
            )
        }
        ("POST", "/_sandbox/mode") => match serde_json::from_slice::<Mode>(&body) {
            Ok(mode) => {
                shared.state.lock().await.mode = mode;
                plain(
                    StatusCode::OK,
                    &serde_json::to_string(&mode).unwrap_or_default(),
                )
            }
            Err(e) => plain(
                StatusCode::BAD_REQUEST,
                &json!({"error": e.to_string()}).to_string(),
            ),
        },
        // CloudWatch alarm states that deployments with `alarms` watch.
        ("GET", "/_sandbox/alarms") => {
            let alarms = shared.state.lock().await.alarms.clone();
            plain(StatusCode::OK, &json!(alarms).to_string())
        }
        ("POST", "/_sandbox/alarms") => match serde_json::from_slice::<Value>(&body) {
            Ok(v) => match (v["name"].as_str(), v["state"].as_str()) {
                (Some(name), Some(state @ ("ALARM" | "OK" | "INSUFFICIENT_DATA")))
                    if !name.is_empty() =>
                {
                    let mut s = shared.state.lock().await;
                    s.alarms.insert(name.to_string(), state.to_string());
                    let out = json!(s.alarms).to_string();
                    drop(s);
                    shared.wake.notify_one();
                    plain(StatusCode::OK, &out)
                }
                _ => plain(
                    StatusCode::BAD_REQUEST,
                    &json!({"error": "expected {\"name\": NAME, \"state\": \"ALARM\" | \"OK\" | \"INSUFFICIENT_DATA\"}"}).to_string(),
                ),
            },
            Err(e) => plain(
                StatusCode::BAD_REQUEST,
                &json!({"error": e.to_string()}).to_string(),
            ),
        },
        // How CodeDeploy hook functions end, by name or ARN.
        ("GET", "/_sandbox/hooks") => {
            let hooks = shared.state.lock().await.codedeploy.hooks.clone();
            plain(StatusCode::OK, &json!(hooks).to_string())
        }
        ("POST", "/_sandbox/hooks") => match serde_json::from_slice::<Value>(&body) {
            Ok(v) => match (v["function"].as_str(), v["result"].as_str()) {
                (Some(function), Some(result @ ("Failed" | "Succeeded")))
                    if !function.is_empty() =>
                {
                    let mut s = shared.state.lock().await;
                    s.codedeploy
                        .hooks
                        .insert(function.to_string(), result.to_string());
                    let out = json!(s.codedeploy.hooks).to_string();
                    drop(s);
                    shared.wake.notify_one();
                    plain(StatusCode::OK, &out)
                }
                _ => plain(
                    StatusCode::BAD_REQUEST,
                    &json!({"error": "expected {\"function\": NAME_OR_ARN, \"result\": \"Failed\" | \"Succeeded\"}"}).to_string(),
                ),
            },
            Err(e) => plain(
                StatusCode::BAD_REQUEST,
                &json!({"error": e.to_string()}).to_string(),
            ),
        },
        _ => plain(
            StatusCode::NOT_FOUND,
            &json!({"error": format!("no control endpoint {method} {path}")}).to_string(),
        ),
    }
}

fn plain(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("static response parts")
}

/// An ECS, ECR, CodeDeploy, CloudWatch Logs or STS call, read whole: `target` is its `X-Amz-Target`.
async fn api(shared: Arc<Shared>, target: Option<&str>, body: &Bytes) -> Response<Full<Bytes>> {
    match target {
        Some(t)
            if t.starts_with(ECS_PREFIX)
                || t.starts_with(ECR_PREFIX)
                || t.starts_with(CODEDEPLOY_PREFIX) =>
        {
            let (service, op) = t.split_once('.').unwrap_or((t, ""));
            let input: Value = if body.is_empty() {
                json!({})
            } else {
                match serde_json::from_slice(body) {
                    Ok(v) => v,
                    Err(e) => {
                        return error(&ApiError::new(
                            "SerializationException",
                            format!("invalid JSON: {e}"),
                        ))
                    }
                }
            };
            debug!("sandbox: {service} {op}");
            let name = if t.starts_with(ECS_PREFIX) {
                "ECS"
            } else if t.starts_with(CODEDEPLOY_PREFIX) {
                "CodeDeploy"
            } else {
                "ECR"
            };
            {
                let mut calls = shared.calls.lock().unwrap_or_else(|e| e.into_inner());
                *calls.entry(format!("{name}.{op}")).or_default() += 1;
                // How well a client batches: the services named across DescribeServices calls.
                if op == "DescribeServices" {
                    let named = input["services"].as_array().map_or(0, Vec::len) as u64;
                    *calls
                        .entry("ECS.DescribeServices.services".to_string())
                        .or_default() += named;
                }
            }
            let now = super::now();
            let mut state = shared.state.lock().await;
            let reply = if t.starts_with(ECS_PREFIX) {
                ecs::handle(&mut state, op, &input, now)
            } else if t.starts_with(CODEDEPLOY_PREFIX) {
                super::codedeploy::handle(&mut state, op, &input, now)
            } else {
                let has_blob = |d: &str| shared.blobs.has(d);
                let ctx = ecr::Context {
                    region: &shared.place.region,
                    account: &shared.place.account,
                    host: &shared.host,
                    password: &shared.password,
                    now,
                    has_blob: &has_blob,
                };
                ecr::handle(&mut state.ecr, &ctx, op, &input)
            };
            match reply {
                Ok(v) => {
                    drop(state);
                    // Only calls that change something need the runner at once.
                    if !["Describe", "List", "Get", "BatchGet"]
                        .iter()
                        .any(|p| op.starts_with(p))
                    {
                        shared.wake.notify_one();
                    }
                    ok_json(&v)
                }
                Err(e) => error(&e),
            }
        }
        Some(t) if t.starts_with(super::logs::PREFIX) => {
            let op = &t[super::logs::PREFIX.len()..];
            let input: Value = serde_json::from_slice(body).unwrap_or_else(|_| json!({}));
            *shared
                .calls
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(format!("Logs.{op}"))
                .or_default() += 1;
            let state = shared.state.lock().await;
            match super::logs::handle(&state, op, &input, super::now()) {
                Ok(v) => ok_json(&v),
                Err(e) => error(&e),
            }
        }
        Some(t) => error(&ApiError::new(
            "UnknownOperationException",
            format!("the sandbox does not serve {t}"),
        )),
        None => query(&shared, body),
    }
}

/// STS (query protocol): GetCallerIdentity.
fn query(shared: &Shared, body: &[u8]) -> Response<Full<Bytes>> {
    let action = query_action(body);
    if action != "GetCallerIdentity" {
        return error(&ApiError::new(
            "InvalidAction",
            format!("the sandbox does not serve the query action {action:?}"),
        ));
    }
    let account = &shared.place.account;
    let xml = format!(
        "<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\
         <GetCallerIdentityResult><Arn>arn:aws:iam::{account}:user/sandbox</Arn>\
         <UserId>SANDBOX</UserId><Account>{account}</Account></GetCallerIdentityResult>\
         <ResponseMetadata><RequestId>{}</RequestId></ResponseMetadata></GetCallerIdentityResponse>",
        request_id()
    );
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "text/xml")
        .header("x-amzn-requestid", request_id())
        .body(Full::new(Bytes::from(xml)))
        .expect("static response parts")
}

fn ok_json(v: &Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/x-amz-json-1.1")
        .header("x-amzn-requestid", request_id())
        .body(Full::new(Bytes::from(v.to_string())))
        .expect("static response parts")
}

/// An error as AWS JSON services send it.
pub fn error(e: &ApiError) -> Response<Full<Bytes>> {
    let body = json!({"__type": e.kind, "message": e.message});
    Response::builder()
        .status(StatusCode::BAD_REQUEST)
        .header("content-type", "application/x-amz-json-1.1")
        .header("x-amzn-requestid", request_id())
        .header("x-amzn-errortype", e.kind)
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("static response parts")
}

fn request_id() -> String {
    use super::random_hex;
    format!(
        "{}-{}-{}-{}-{}",
        random_hex(8),
        random_hex(4),
        random_hex(4),
        random_hex(4),
        random_hex(12)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_access_key_is_read_from_a_sigv4_header() {
        for (header, want) in [
            (
                "AWS4-HMAC-SHA256 Credential=ASIAEXAMPLE/20250101/us-east-1/ecs/aws4_request, \
                 SignedHeaders=host;x-amz-date, Signature=abc",
                Some("ASIAEXAMPLE"),
            ),
            (
                "AWS4-HMAC-SHA256 SignedHeaders=host,Credential=AKIA1/d/r/s/aws4_request",
                Some("AKIA1"),
            ),
            ("Basic QVdTOnBhc3N3b3Jk", None),
            ("AWS4-HMAC-SHA256 Credential=/d/r/s/aws4_request", None),
            ("", None),
        ] {
            assert_eq!(access_key(header), want, "{header}");
        }
    }
}
