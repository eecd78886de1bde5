//! CloudWatch Logs' GetLogEvents over the output the sandbox keeps of each task's containers,
//! so a client reads a one-off task's log from the sandbox as it would from `awslogs` in AWS
//! (stream `<prefix>/<container>/<task id>`). A running task's output is copied every second,
//! and kept when its container is removed.

use serde_json::{json, Value};

use super::ecs::ApiError;
use super::model::{State, Time};

/// The AWS JSON 1.1 target prefix of CloudWatch Logs.
pub const PREFIX: &str = "Logs_20140328.";

/// Runs one CloudWatch Logs operation (GetLogEvents only).
pub fn handle(state: &State, op: &str, input: &Value, now: Time) -> Result<Value, ApiError> {
    match op {
        "GetLogEvents" => get_log_events(state, input, now),
        other => Err(ApiError::new(
            "UnknownOperationException",
            format!("the sandbox does not serve CloudWatch Logs {other}"),
        )),
    }
}

/// GetLogEvents as the CloudWatch Logs API reference describes it: the stream must be one
/// the awslogs driver writes (`<awslogs-stream-prefix>/<container>/<task id>` in the
/// container's `awslogs-group`); events come oldest first, at most `limit` (default 10,000),
/// from the head when `startFromHead` is true, else the latest; `nextToken` is a token from an
/// earlier answer (`f/N` forward, `b/N` backward, N an event index).
fn get_log_events(state: &State, input: &Value, now: Time) -> Result<Value, ApiError> {
    let missing_stream = || {
        ApiError::new(
            "ResourceNotFoundException",
            "The specified log stream does not exist.",
        )
    };
    let group = input["logGroupName"]
        .as_str()
        .or_else(|| input["logGroupIdentifier"].as_str())
        .ok_or_else(|| {
            ApiError::new(
                "InvalidParameterException",
                "Either logGroupName or logGroupIdentifier must be specified.",
            )
        })?;
    let stream = input["logStreamName"].as_str().ok_or_else(|| {
        ApiError::new(
            "InvalidParameterException",
            "1 validation error detected: Value null at 'logStreamName' failed to satisfy \
             constraint: Member must not be null",
        )
    })?;
    let limit = match input["limit"].as_i64() {
        None => 10_000,
        Some(n @ 1..=10_000) => n as usize,
        Some(n) => {
            return Err(ApiError::new(
                "InvalidParameterException",
                format!(
                    "1 validation error detected: Value '{n}' at 'limit' failed to satisfy \
                     constraint: Member must have value between 1 and 10000"
                ),
            ))
        }
    };
    let from_head = input["startFromHead"].as_bool().unwrap_or(false);
    let mut parts = stream.rsplitn(3, '/');
    let (Some(task_id), Some(container), Some(prefix)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(missing_stream());
    };
    let task = state
        .clusters
        .values()
        .find_map(|c| c.tasks.get(task_id))
        .ok_or_else(missing_stream)?;
    // The stream exists only where the task's definition sends that container's output.
    let logs = state
        .task_definition(&task.task_definition)
        .and_then(|td| {
            td.body["containerDefinitions"]
                .as_array()?
                .iter()
                .find(|c| c["name"] == container)
                .map(|c| c["logConfiguration"].clone())
        })
        .filter(|l| l["logDriver"] == "awslogs")
        .ok_or_else(missing_stream)?;
    if logs["options"]["awslogs-group"].as_str() != Some(group) {
        return Err(missing_stream());
    }
    if logs["options"]["awslogs-stream-prefix"].as_str() != Some(prefix) {
        return Err(missing_stream());
    }
    let lines = task.logs.get(container).map(Vec::as_slice).unwrap_or(&[]);
    let token = input["nextToken"].as_str();
    let index = |t: &str| t[2..].parse::<usize>().ok().map(|n| n.min(lines.len()));
    let (from, to) = match token {
        Some(t) if t.starts_with("f/") => {
            let at = index(t).ok_or_else(|| bad_token(t))?;
            (at, (at + limit).min(lines.len()))
        }
        Some(t) if t.starts_with("b/") => {
            let at = index(t).ok_or_else(|| bad_token(t))?;
            (at.saturating_sub(limit), at)
        }
        Some(t) => return Err(bad_token(t)),
        None if from_head => (0, limit.min(lines.len())),
        None => (lines.len().saturating_sub(limit), lines.len()),
    };
    let at = (task.stopped_at.unwrap_or(now) * 1000.0) as i64;
    let events: Vec<Value> = lines[from..to]
        .iter()
        .map(|l| json!({"timestamp": at, "message": l, "ingestionTime": at}))
        .collect();
    Ok(json!({
        "events": events,
        "nextForwardToken": format!("f/{to}"),
        "nextBackwardToken": format!("b/{from}"),
    }))
}

fn bad_token(token: &str) -> ApiError {
    ApiError::new(
        "InvalidParameterException",
        format!("The specified nextToken is invalid: {token}"),
    )
}
