//! `deckhand rollback`: settings in, the manual rollback pipeline, its outcome out as the
//! result and the exit code.

use crate::deploy::rollback;
use crate::error::{Error, Exit, Result};
use crate::report::Reporter;
use crate::settings::RollbackSettings;

/// Runs the rollback: 0 when the service is stable on the target, 1 when nothing was changed,
/// 4 when it was changed but is not confirmed stable.
pub async fn run(r: &Reporter, region: Option<&str>, s: &RollbackSettings) -> Result<()> {
    let rollback::Outcome { result, exit } = rollback::rollback(r, region, s).await?;
    r.result(
        &result,
        &format!("{} {}", result.result, result.task_definition_arn),
    );
    match exit {
        Exit::Success => Ok(()),
        _ => Err(Error {
            exit,
            message: format!(
                "the rollback was started but the service is not confirmed healthy: {}",
                result.reason
            ),
            kind: Default::default(),
        }),
    }
}
