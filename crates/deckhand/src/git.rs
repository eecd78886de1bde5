//! Which commit an image is for: the SHA from the flag, the CI system, or git itself.

use std::path::Path;

use tokio::process::Command;

use crate::error::{Error, Result};

/// Where the SHA came from; only a SHA read from git can be checked for a dirty tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShaSource {
    Flag,
    Env(&'static str),
    Git,
}

/// CI variables that carry the commit being built, in the order they are consulted.
pub const SHA_ENV_VARS: [&str; 3] = ["GITHUB_SHA", "CI_COMMIT_SHA", "GIT_COMMIT"];

/// Picks the SHA from the flag or the first CI variable that is set (pure; `None` means
/// "ask git").
pub fn pick_sha(
    flag: Option<&str>,
    env: impl Fn(&str) -> Option<String>,
) -> Option<(String, ShaSource)> {
    if let Some(s) = flag.filter(|s| !s.trim().is_empty()) {
        return Some((s.trim().to_string(), ShaSource::Flag));
    }
    SHA_ENV_VARS.iter().find_map(|name| {
        env(name)
            .filter(|v| !v.trim().is_empty())
            .map(|v| (v.trim().to_string(), ShaSource::Env(name)))
    })
}

/// Checks that `sha` is a full commit id (40 hex, or 64 in a SHA-256 repository) and returns
/// it lower-cased.
pub fn validate_sha(sha: &str, source: &ShaSource) -> Result<String> {
    let ok = (sha.len() == 40 || sha.len() == 64) && sha.chars().all(|c| c.is_ascii_hexdigit());
    if ok {
        return Ok(sha.to_ascii_lowercase());
    }
    let from = match source {
        ShaSource::Flag => "--sha".to_string(),
        ShaSource::Env(name) => format!("${name}"),
        ShaSource::Git => "git rev-parse HEAD".to_string(),
    };
    Err(Error::usage(format!(
        "{from} gave {sha:?}, which is not a full commit SHA (40 hex characters, or 64 in a SHA-256 repository). \
         Pass the full SHA (e.g. `git rev-parse HEAD`), not a short or symbolic one."
    )))
}

/// The commit and whether the work tree has uncommitted changes, as git sees them in `dir`.
pub async fn head_of(dir: &Path) -> Result<(String, bool)> {
    let sha = git(dir, &["rev-parse", "--verify", "HEAD"]).await?;
    let status = git(dir, &["status", "--porcelain", "--untracked-files=normal"]).await?;
    Ok((sha.trim().to_string(), !status.trim().is_empty()))
}

/// The source repository URL for the OCI `source` label, with any credentials removed.
pub async fn source_url(dir: &Path, env: impl Fn(&str) -> Option<String>) -> Option<String> {
    let from_ci = match (env("GITHUB_SERVER_URL"), env("GITHUB_REPOSITORY")) {
        (Some(server), Some(repo)) if !server.is_empty() && !repo.is_empty() => {
            Some(format!("{}/{}", server.trim_end_matches('/'), repo))
        }
        _ => env("CI_PROJECT_URL")
            .or_else(|| env("GIT_URL"))
            .filter(|s| !s.is_empty()),
    };
    let url = match from_ci {
        Some(url) => url,
        None => git(dir, &["remote", "get-url", "origin"])
            .await
            .ok()?
            .trim()
            .to_string(),
    };
    (!url.is_empty()).then(|| strip_credentials(&url))
}

/// Removes `user:password@` from a URL so that a token in a clone URL never becomes a label.
pub fn strip_credentials(url: &str) -> String {
    if let Some(scheme_end) = url.find("://") {
        let rest = &url[scheme_end + 3..];
        let host_end = rest.find('/').unwrap_or(rest.len());
        if let Some(at) = rest[..host_end].rfind('@') {
            return format!("{}{}", &url[..scheme_end + 3], &rest[at + 1..]);
        }
    }
    url.to_string()
}

/// A tag deckhand gives a commit: its full SHA, 40 (or, for SHA-256 repositories, 64) lowercase
/// hex digits (pure).
pub fn looks_like_sha(tag: &str) -> bool {
    matches!(tag.len(), 40 | 64) && tag.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Up to `n` commits before `sha`, newest first; empty where git cannot tell (no checkout, a
/// shallow clone).
pub async fn ancestors(dir: &Path, sha: &str, n: usize) -> Vec<String> {
    let max = format!("--max-count={n}");
    match git(dir, &["rev-list", &max, "--skip=1", sha]).await {
        Ok(out) => out
            .lines()
            .map(str::to_string)
            .filter(|l| looks_like_sha(l))
            .collect(),
        Err(_) => Vec::new(),
    }
}

async fn git(dir: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .await
        .map_err(|e| {
            Error::failed(format!(
                "could not run git to find the commit SHA ({e}). Install git, or pass --sha \
                 (or set GITHUB_SHA / CI_COMMIT_SHA / GIT_COMMIT)."
            ))
        })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(Error::failed(format!(
            "`git {}` failed in {}: {}. Run deckhand inside a git checkout, or pass --sha.",
            args.join(" "),
            dir.display(),
            stderr.trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha_tags_are_full_lowercase_hex() {
        let full = "0123456789abcdef0123456789abcdef01234567";
        assert!(looks_like_sha(full));
        assert!(looks_like_sha(&full.repeat(2)[..64]));
        assert!(!looks_like_sha(&full[..12]));
        assert!(!looks_like_sha(&full.to_uppercase()));
        assert!(!looks_like_sha(&format!("{full}-dirty")));
        assert!(!looks_like_sha("latest"));
    }

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn flag_wins_then_ci_vars_in_order() {
        let env = env_of(&[("CI_COMMIT_SHA", "bbb"), ("GIT_COMMIT", "ccc")]);
        assert_eq!(
            pick_sha(Some("aaa"), &env),
            Some(("aaa".into(), ShaSource::Flag))
        );
        assert_eq!(
            pick_sha(None, &env),
            Some(("bbb".into(), ShaSource::Env("CI_COMMIT_SHA")))
        );
        let env = env_of(&[("GITHUB_SHA", ""), ("GIT_COMMIT", "ccc")]);
        assert_eq!(
            pick_sha(None, &env),
            Some(("ccc".into(), ShaSource::Env("GIT_COMMIT")))
        );
        assert_eq!(pick_sha(Some(" "), env_of(&[])), None);
    }

    #[test]
    fn only_full_shas_are_accepted() {
        let full = "0123456789ABCDEF0123456789abcdef01234567";
        assert_eq!(
            validate_sha(full, &ShaSource::Flag).unwrap(),
            full.to_ascii_lowercase()
        );
        let err = validate_sha("abc123", &ShaSource::Env("GITHUB_SHA")).unwrap_err();
        assert!(err.message.contains("$GITHUB_SHA"), "{}", err.message);
        assert!(validate_sha(&"g".repeat(40), &ShaSource::Git).is_err());
        assert!(validate_sha(&"a".repeat(64), &ShaSource::Git).is_ok());
    }

    #[test]
    fn credentials_are_stripped_from_urls() {
        assert_eq!(
            strip_credentials("https://user:tok@github.com/a/b.git"),
            "https://github.com/a/b.git"
        );
        assert_eq!(
            strip_credentials("https://github.com/a/b"),
            "https://github.com/a/b"
        );
        assert_eq!(
            strip_credentials("git@github.com:a/b.git"),
            "git@github.com:a/b.git"
        );
    }
}
