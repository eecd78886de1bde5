//! The wire: AWS JSON 1.1 on `POST /` routed by `X-Amz-Target`, and STS's query protocol, so
//! unmodified AWS SDKs and the aws CLI talk to the sandbox with only `AWS_ENDPOINT_URL` set.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde_json::{json, Value};
use tracing::debug;

use super::ecs::{self, ApiError};
use super::Shared;

/// The largest request body accepted (task definitions are small).
const MAX_BODY: usize = 4 * 1024 * 1024;

const ECS_PREFIX: &str = "AmazonEC2ContainerServiceV20141113.";

/// Answers one HTTP request.
pub async fn serve(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let target = req
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return Ok(error(&ApiError::new(
                "SerializationException",
                "the request body could not be read",
            )))
        }
    };
    let response = match target.as_deref() {
        Some(t) if t.starts_with(ECS_PREFIX) => {
            let op = &t[ECS_PREFIX.len()..];
            let input: Value = if body.is_empty() {
                json!({})
            } else {
                match serde_json::from_slice(&body) {
                    Ok(v) => v,
                    Err(e) => {
                        return Ok(error(&ApiError::new(
                            "SerializationException",
                            format!("invalid JSON: {e}"),
                        )))
                    }
                }
            };
            debug!("sandbox: ECS {op}");
            let now = super::now();
            let mut state = shared.state.lock().await;
            match ecs::handle(&mut state, op, &input, now) {
                Ok(v) => {
                    drop(state);
                    shared.wake.notify_one();
                    ok_json(&v)
                }
                Err(e) => error(&e),
            }
        }
        Some(t) => error(&ApiError::new(
            "UnknownOperationException",
            format!("the sandbox does not serve {t}"),
        )),
        None => query(&shared, &body),
    };
    Ok(response)
}

/// STS (query protocol): GetCallerIdentity.
fn query(shared: &Shared, body: &[u8]) -> Response<Full<Bytes>> {
    let form = String::from_utf8_lossy(body);
    let action = form
        .split('&')
        .find_map(|kv| kv.strip_prefix("Action="))
        .unwrap_or_default();
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
    use rand::Rng;
    let mut rng = rand::rng();
    let hex = |n: usize, rng: &mut rand::rngs::ThreadRng| -> String {
        (0..n)
            .map(|_| char::from_digit(rng.random_range(0..16), 16).expect("hex"))
            .collect()
    };
    format!(
        "{}-{}-{}-{}-{}",
        hex(8, &mut rng),
        hex(4, &mut rng),
        hex(4, &mut rng),
        hex(4, &mut rng),
        hex(12, &mut rng)
    )
}
