//! Results on stdout, for people (text) and scripts (JSON); logs go to stderr elsewhere.

use serde::Serialize;

use crate::cli::OutputFormat;
use crate::redact;

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
}

/// Prints a command's result: `text` for people, or `value` as one JSON object.
pub fn print_result(format: OutputFormat, value: &impl Serialize, text: &str) {
    crate::report::publish(&serde_json::to_value(value).expect("plain data serializes"));
    match format {
        OutputFormat::Text => redact::println_stdout(text),
        OutputFormat::Json => {
            redact::println_stdout(&serde_json::to_string(value).expect("plain data serializes"))
        }
    }
}

/// Prints the push result: two lines of text, or one JSON object.
pub fn print_push(format: OutputFormat, outcome: &PushOutcome) {
    let text = format!("{}\n{}", outcome.image, outcome.pinned);
    print_result(format, outcome, &text);
}
