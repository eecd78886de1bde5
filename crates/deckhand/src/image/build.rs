//! Runs the image build on the Docker engine and turns its output into log lines and, on
//! failure, an error naming the step that failed.

use std::collections::HashMap;

use bollard::query_parameters::{BuildImageOptionsBuilder, TagImageOptionsBuilder};
use bollard::Docker;
use futures_util::StreamExt;
use tracing::debug;

use super::context::{Context, Stats};
use super::reference::ImageRef;
use crate::error::{Error, Result};

/// What to build and how to name it.
#[derive(Debug, Clone, Default)]
pub struct BuildSpec {
    /// Full references to tag the result with, e.g. `host/repo:sha`; the first is the build tag.
    pub tags: Vec<String>,
    pub build_args: HashMap<String, String>,
    pub target: Option<String>,
    pub labels: HashMap<String, String>,
    /// `os/arch[/variant]` to build for; the engine's own when `None`.
    pub platform: Option<String>,
    /// Images whose inline cache metadata a BuildKit build may reuse.
    pub cache_from: Vec<String>,
    /// No local cache and no imports.
    pub no_cache: bool,
    /// The network RUN steps get (`default`, `host`, `none`); the engine's default when `None`.
    pub network: Option<String>,
}

/// Splits the engine's output into lines and remembers the step being run.
#[derive(Debug, Default)]
pub struct BuildLog {
    partial: String,
    /// The last `Step N/M : …` line seen.
    pub step: Option<String>,
}

impl BuildLog {
    /// Feeds a chunk of engine output; returns the complete lines in it.
    pub fn feed(&mut self, chunk: &str) -> Vec<String> {
        self.partial.push_str(chunk);
        let mut lines = Vec::new();
        while let Some(i) = self.partial.find('\n') {
            let line: String = self.partial.drain(..=i).collect();
            let line = line.trim_end().to_string();
            if line.starts_with("Step ") {
                self.step = Some(line.clone());
            }
            lines.push(line);
        }
        lines
    }

    /// The error a person should read when the build stops with `message`.
    pub fn failure(&self, message: &str) -> Error {
        let message = message.trim();
        match &self.step {
            Some(step) => Error::failed(format!(
                "the image build failed at {step}\n  {message}\nFix the Dockerfile or the context and run again."
            )),
            None => Error::failed(format!(
                "the image build failed: {message}\nFix the Dockerfile or the context and run again."
            )),
        }
    }
}

/// Builds the context and tags the result with every tag in `spec`. Returns the image id.
pub async fn build(
    r: &crate::report::Reporter,
    docker: &Docker,
    context: Context,
    spec: &BuildSpec,
) -> Result<(String, Stats)> {
    let first_tag = spec.tags.first().cloned().unwrap_or_default();
    let mut options = BuildImageOptionsBuilder::default()
        .dockerfile(&context.dockerfile)
        .t(&first_tag)
        .rm(true)
        .forcerm(true)
        .buildargs(&spec.build_args)
        .labels(&spec.labels);
    if let Some(target) = &spec.target {
        options = options.target(target);
    }
    if let Some(platform) = &spec.platform {
        options = options.platform(platform);
    }
    if spec.no_cache {
        options = options.nocache(true);
    }
    if let Some(network) = &spec.network {
        options = options.networkmode(network);
    }
    let (body, walker) = context.stream();
    let mut output =
        docker.build_image(options.build(), None, Some(bollard::body_try_stream(body)));

    let mut log = BuildLog::default();
    let mut image_id = None;
    let mut failure = None;
    while let Some(item) = output.next().await {
        match item {
            Ok(info) => {
                if let Some(text) = &info.stream {
                    for line in log.feed(text) {
                        r.output(format!("  {line}"));
                    }
                }
                if let Some(status) = &info.status {
                    debug!("  {status}");
                }
                if let Some(id) = info.aux.and_then(|a| a.id) {
                    image_id = Some(id);
                }
            }
            Err(bollard::errors::Error::DockerStreamError { error }) => {
                failure = Some(log.failure(&error));
                break;
            }
            Err(e) => {
                failure = Some(Error::failed(format!(
                    "the Docker engine failed the build: {e}"
                )));
                break;
            }
        }
    }
    drop(output);
    let walked = walker
        .await
        .map_err(|e| Error::failed(format!("the context writer stopped: {e}")))?;
    // A walk error (unreadable file) explains a failed upload better than the engine's view
    // of it; a broken pipe only means the engine stopped reading, so its error is the story.
    let stats = match walked {
        Ok(stats) => stats,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe && failure.is_some() => {
            Stats::default()
        }
        Err(e) => {
            return Err(Error::failed(format!(
                "could not send the build context: {e}"
            )))
        }
    };
    if let Some(err) = failure {
        return Err(err);
    }
    let image_id = match image_id {
        Some(id) => id,
        None => docker
            .inspect_image(&first_tag)
            .await
            .ok()
            .and_then(|i| i.id)
            .ok_or_else(|| Error::failed("the build ended without producing an image"))?,
    };
    for extra in spec.tags.iter().skip(1) {
        tag(docker, &image_id, extra).await?;
    }
    Ok((image_id, stats))
}

/// Adds the reference `full_ref` (`repo:tag`, `latest` when no tag is given) to an existing
/// image.
pub async fn tag(docker: &Docker, image: &str, full_ref: &str) -> Result<()> {
    let reference = ImageRef::parse(full_ref)
        .map_err(|e| Error::failed(format!("cannot tag the image: {e}")))?;
    let options = TagImageOptionsBuilder::default()
        .repo(&reference.repository_uri())
        .tag(reference.tag().unwrap_or("latest"))
        .build();
    docker
        .tag_image(image, Some(options))
        .await
        .map_err(|e| Error::failed(format!("could not tag the image as {full_ref}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_split_across_chunks_and_the_step_is_kept() {
        let mut log = BuildLog::default();
        assert!(log.feed("Step 1/2 : FROM scr").is_empty());
        assert_eq!(
            log.feed("atch\n ---> abc\nStep 2/2 : RUN false\n"),
            vec![
                "Step 1/2 : FROM scratch",
                " ---> abc",
                "Step 2/2 : RUN false"
            ]
        );
        let err = log.failure("The command '/bin/sh -c false' returned a non-zero code: 1");
        assert!(err.message.contains("Step 2/2 : RUN false"));
        assert!(err.message.contains("non-zero code: 1"));
    }
}
