//! The result objects commands print on stdout and write to every result file.

use serde::Serialize;

/// What `deckhand push` produced.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PushOutcome {
    /// `<repository uri>:<sha tag>`.
    pub image: String,
    /// The manifest digest, `sha256:…`.
    pub digest: String,
    /// `<repository uri>@<digest>`: the reference to deploy.
    pub pinned: String,
    /// Every tag that points at the image, the SHA tag first.
    pub tags: Vec<String>,
    /// True when the SHA tag was already in the registry and nothing was built.
    pub skipped: bool,
    pub repository_uri: String,
    pub sha: String,
    /// The image's CPU architecture (`amd64`, `arm64`) where known, for the deploy's check
    /// against the task definition's runtime platform.
    #[serde(skip)]
    pub architecture: Option<String>,
}
