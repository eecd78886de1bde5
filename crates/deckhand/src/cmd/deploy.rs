//! `deckhand deploy`: settings in, the deploy pipeline, its outcome out as the result and the
//! exit code.

use crate::deploy::pipeline;
use crate::error::{Error, Exit, Result};
use crate::report::Reporter;
use crate::settings::DeploySettings;

/// Runs the deploy; the exit code follows the README's table.
pub async fn run(r: &Reporter, s: &DeploySettings) -> Result<()> {
    let pipeline::Outcome { result, exit } = pipeline::deploy(r, s).await?;
    let text = format!("{} {}", result.result, result.task_definition_arn);
    r.result(&result, text.trim_end());
    let message = match exit {
        Exit::Success => return Ok(()),
        Exit::RolledBack => format!("the deploy failed and was rolled back: {}", result.reason),
        _ => format!(
            "the deploy failed and the service is not confirmed healthy: {}",
            result.reason
        ),
    };
    Err(Error {
        exit,
        message,
        kind: Default::default(),
    })
}
