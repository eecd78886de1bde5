//! CloudWatch Logs' GetLogEvents over the output the sandbox keeps of each task's containers,
//! so a client reads a one-off task's log from the sandbox as it would from `awslogs` in AWS
//! (stream `<prefix>/<container>/<task id>`). Output is kept when a container is removed: a
//! stream has its lines once the task has stopped.

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

fn get_log_events(state: &State, input: &Value, now: Time) -> Result<Value, ApiError> {
    let missing = || {
        ApiError::new(
            "ResourceNotFoundException",
            "The specified log stream does not exist.",
        )
    };
    let stream = input["logStreamName"].as_str().ok_or_else(missing)?;
    let mut parts = stream.rsplitn(3, '/');
    let (Some(task_id), Some(container)) = (parts.next(), parts.next()) else {
        return Err(missing());
    };
    let task = state
        .clusters
        .values()
        .find_map(|c| c.tasks.get(task_id))
        .filter(|t| t.containers.iter().any(|c| c.name == container))
        .ok_or_else(missing)?;
    let lines = task.logs.get(container).map(Vec::as_slice).unwrap_or(&[]);
    let from = input["nextToken"]
        .as_str()
        .and_then(|t| t.strip_prefix("f/"))
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or(0)
        .min(lines.len());
    let at = (task.stopped_at.unwrap_or(now) * 1000.0) as i64;
    let events: Vec<Value> = lines[from..]
        .iter()
        .map(|l| json!({"timestamp": at, "message": l, "ingestionTime": at}))
        .collect();
    Ok(json!({
        "events": events,
        "nextForwardToken": format!("f/{}", lines.len()),
        "nextBackwardToken": "b/0",
    }))
}
