//! CloudWatch Logs reads: the lines of one log stream (a one-off task's `awslogs` output, a
//! failed task's last words).

use aws_sdk_cloudwatchlogs::Client;

use crate::error::Result;

/// The stream's lines after `token` (from its head when `None`), and the token to ask from
/// next time. A stream that does not exist yet has no lines.
pub async fn next_lines(
    client: &Client,
    group: &str,
    stream: &str,
    token: Option<&str>,
) -> Result<(Vec<String>, Option<String>)> {
    let out = client
        .get_log_events()
        .log_group_name(group)
        .log_stream_name(stream)
        .start_from_head(true)
        .set_next_token(token.map(str::to_string))
        .send()
        .await;
    match out {
        Ok(o) => Ok((
            o.events()
                .iter()
                .filter_map(|e| e.message().map(str::to_string))
                .collect(),
            o.next_forward_token().map(str::to_string),
        )),
        Err(e)
            if e.as_service_error()
                .is_some_and(|se| se.is_resource_not_found_exception()) =>
        {
            Ok((Vec::new(), token.map(str::to_string)))
        }
        Err(e) => Err(super::failure(
            &format!("CloudWatch Logs GetLogEvents {group} {stream}"),
            &e,
        )),
    }
}

/// The last `count` lines of a stream, oldest first; `None` when the stream does not exist
/// (nothing was logged, or not under this name).
pub async fn last_lines(
    client: &Client,
    group: &str,
    stream: &str,
    count: usize,
) -> Result<Option<Vec<String>>> {
    let out = client
        .get_log_events()
        .log_group_name(group)
        .log_stream_name(stream)
        .start_from_head(false)
        .limit(count.clamp(1, 10_000) as i32)
        .send()
        .await;
    match out {
        Ok(o) => Ok(Some(
            o.events()
                .iter()
                .filter_map(|e| e.message().map(|m| m.trim_end().to_string()))
                .collect(),
        )),
        Err(e)
            if e.as_service_error()
                .is_some_and(|se| se.is_resource_not_found_exception()) =>
        {
            Ok(None)
        }
        Err(e) => Err(super::failure(
            &format!("CloudWatch Logs GetLogEvents {group} {stream}"),
            &e,
        )),
    }
}
