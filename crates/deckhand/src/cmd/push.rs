//! `deckhand push`: settings in, the build-and-push pipeline, the pushed image out.

use crate::error::Result;
use crate::image::publish;
use crate::report::Reporter;
use crate::settings::PushSettings;

/// Builds and pushes (or finds the image already pushed) and prints where it is.
pub async fn run(r: &Reporter, region: Option<&str>, s: &PushSettings) -> Result<()> {
    let outcome = publish::run(r, region, s).await?;
    r.result(&outcome, &format!("{}\n{}", outcome.image, outcome.pinned));
    Ok(())
}
