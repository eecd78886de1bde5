//! CloudWatch Logs reads: the lines of one log stream (a one-off task's `awslogs` output).

use aws_sdk_cloudwatchlogs::Client;

use crate::error::{Error, Result};

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
        Err(e) => Err(Error::failed(format!(
            "CloudWatch Logs GetLogEvents {group} {stream} failed: {}",
            super::describe(&e)
        ))),
    }
}
