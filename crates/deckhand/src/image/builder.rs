//! Which builder runs a build: BuildKit where the engine has it, the classic builder where it
//! does not or when asked, and a clear error when the Dockerfile needs what the chosen one
//! lacks (pure decisions; the engine's facts come from its `/version`).

use super::dockerfile::{describe_uses, Feature, FeatureUse};
use super::options::BuilderChoice;
use crate::error::Error;

/// The builder a build runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builder {
    BuildKit,
    Legacy,
}

/// What the engine says of itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EngineFacts {
    /// `26.1.5+dfsg1`, `20.10.24`.
    pub version: String,
    /// `1.45`.
    pub api_version: String,
    /// `linux`, `windows`.
    pub os: String,
    /// Why deckhand cannot open a BuildKit session with this engine where it could otherwise
    /// (a TLS or SSH `DOCKER_HOST`).
    pub unreachable: Option<String>,
}

impl EngineFacts {
    /// BuildKit came with API 1.39 (Docker 18.09), and only on Linux engines.
    pub fn has_buildkit(&self) -> bool {
        let api = parse_version(&self.api_version);
        self.os.eq_ignore_ascii_case("linux") && api >= (1, 39) && self.unreachable.is_none()
    }

    /// The engine's major version (26 for `26.1.5+dfsg1`), 0 when unreadable.
    pub fn major(&self) -> u32 {
        parse_version(&self.version).0
    }
}

fn parse_version(v: &str) -> (u32, u32) {
    let mut parts = v.split(|c: char| !c.is_ascii_digit());
    let major = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let minor = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    (major, minor)
}

/// What the choice was and why, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chosen {
    pub builder: Builder,
    pub why: String,
    /// Things the chosen builder will quietly ignore.
    pub warnings: Vec<String>,
}

fn directive(feature: Feature) -> bool {
    matches!(feature, Feature::SyntaxDirective | Feature::CheckDirective)
}

/// What of the build only BuildKit builds, for an error (pure): the Dockerfile's features
/// (directives aside, which the classic builder ignores) and `--secret`.
fn needs_buildkit(uses: &[FeatureUse], secrets: bool) -> Option<String> {
    let needs: Vec<FeatureUse> = uses
        .iter()
        .filter(|u| !directive(u.feature))
        .cloned()
        .collect();
    match (needs.is_empty(), secrets) {
        (false, true) => Some(format!("{} and --secret", describe_uses(&needs))),
        (false, false) => Some(describe_uses(&needs)),
        (true, true) => Some("--secret".to_string()),
        (true, false) => None,
    }
}

/// With `--builder legacy` asked, what the classic builder cannot build is bad input (exit 2),
/// known before the engine is asked anything (pure).
pub fn refuse_for_legacy(uses: &[FeatureUse], secrets: bool) -> Result<(), Error> {
    match needs_buildkit(uses, secrets) {
        Some(what) => Err(Error::usage(format!(
            "the build uses {what}, which only BuildKit builds: drop --builder legacy \
             (deckhand builds with BuildKit by default)."
        ))),
        None => Ok(()),
    }
}

/// Picks the builder (pure). `uses` is what the Dockerfile needs of BuildKit; `secrets` says
/// whether `--secret` was given.
pub fn choose(
    asked: BuilderChoice,
    engine: &EngineFacts,
    uses: &[FeatureUse],
    secrets: bool,
) -> Result<Chosen, Error> {
    let version = if engine.version.is_empty() {
        "unknown".to_string()
    } else {
        engine.version.clone()
    };
    let no_buildkit = || match &engine.unreachable {
        Some(why) => format!("deckhand cannot drive BuildKit there: {why}"),
        None => format!(
            "the Docker engine (version {version}, {} API {}) has no BuildKit",
            engine.os, engine.api_version
        ),
    };
    let builder = match asked {
        BuilderChoice::Legacy => Builder::Legacy,
        BuilderChoice::BuildKit if !engine.has_buildkit() => {
            return Err(Error::failed(format!(
                "--builder buildkit was asked, but {}. Use a Linux engine with BuildKit (Docker \
                 18.09 or later; 23 and later build with it by default), or pass --builder legacy.",
                no_buildkit()
            )))
        }
        BuilderChoice::BuildKit => Builder::BuildKit,
        BuilderChoice::Auto if engine.has_buildkit() => Builder::BuildKit,
        BuilderChoice::Auto => Builder::Legacy,
    };
    if builder == Builder::BuildKit {
        let why = match asked {
            BuilderChoice::BuildKit => "asked with --builder buildkit".to_string(),
            _ => format!("Docker Engine {version}"),
        };
        // Build checks came with the Dockerfile frontend Docker 27 carries; an older engine's
        // built-in one reads `# check=` as a comment.
        let has_syntax = uses.iter().any(|u| u.feature == Feature::SyntaxDirective);
        let warnings = uses
            .iter()
            .filter(|u| u.feature == Feature::CheckDirective)
            .filter(|_| !has_syntax && engine.major() < 27)
            .map(|u| {
                format!(
                    "Docker Engine {version}'s built-in Dockerfile frontend ignores {} (line \
                     {}): build checks need Docker 27 or later, or `# syntax=docker/dockerfile:1`",
                    u.feature.describe(),
                    u.line
                )
            })
            .collect();
        return Ok(Chosen {
            builder,
            why,
            warnings,
        });
    }
    let asked_legacy = asked == BuilderChoice::Legacy;
    if asked_legacy {
        refuse_for_legacy(uses, secrets)?;
    } else if let Some(what) = needs_buildkit(uses, secrets) {
        return Err(Error::failed(format!(
            "the build uses {what}, which only BuildKit builds, and {}. Use a Linux engine with \
             BuildKit (Docker 18.09 or later; 23 and later build with it by default).",
            no_buildkit()
        )));
    }
    let warnings = uses
        .iter()
        .filter(|u| directive(u.feature))
        .map(|u| {
            format!(
                "the legacy builder ignores {} (line {})",
                u.feature.describe(),
                u.line
            )
        })
        .collect();
    let why = if asked_legacy {
        "asked with --builder legacy".to_string()
    } else {
        no_buildkit()
    };
    Ok(Chosen {
        builder,
        why,
        warnings,
    })
}

/// A hint for a BuildKit build that failed to read the Dockerfile on an engine whose built-in
/// Dockerfile frontend predates the syntax it uses (pure).
pub fn frontend_hint(message: &str, uses: &[FeatureUse], engine: &EngineFacts) -> Option<String> {
    let parse_failure = ["unknown instruction", "unknown flag", "parse error"]
        .iter()
        .any(|m| message.contains(m));
    let newer_syntax: Vec<FeatureUse> = uses
        .iter()
        .filter(|u| {
            matches!(
                u.feature,
                Feature::Heredoc
                    | Feature::CopyLink
                    | Feature::CopyParents
                    | Feature::CopyExclude
                    | Feature::AddChecksum
            )
        })
        .cloned()
        .collect();
    let has_syntax_line = uses.iter().any(|u| u.feature == Feature::SyntaxDirective);
    (parse_failure && !newer_syntax.is_empty() && !has_syntax_line && engine.major() < 23).then(
        || {
            format!(
                "Docker Engine {}'s built-in Dockerfile frontend predates {}. Upgrade the engine \
                 to 23 or later, or make `# syntax=docker/dockerfile:1` the Dockerfile's first \
                 line so the engine fetches a current frontend.",
                engine.version,
                describe_uses(&newer_syntax)
            )
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine(version: &str, api: &str, os: &str) -> EngineFacts {
        EngineFacts {
            version: version.into(),
            api_version: api.into(),
            os: os.into(),
            unreachable: None,
        }
    }

    fn uses(features: &[Feature]) -> Vec<FeatureUse> {
        features
            .iter()
            .enumerate()
            .map(|(i, f)| FeatureUse {
                feature: *f,
                line: i + 2,
            })
            .collect()
    }

    #[test]
    fn buildkit_where_the_engine_has_it_legacy_where_asked_or_missing() {
        let new = engine("26.1.5+dfsg1", "1.45", "linux");
        let old = engine("18.06.1", "1.38", "linux");
        let windows = engine("25.0.3", "1.44", "windows");
        let tls = EngineFacts {
            unreachable: Some("DOCKER_TLS_VERIFY is set".into()),
            ..new.clone()
        };
        use BuilderChoice::*;
        // (asked, engine, features, secrets) → builder or exit code
        type Case<'a> = (
            BuilderChoice,
            &'a EngineFacts,
            Vec<Feature>,
            bool,
            Result<Builder, u8>,
        );
        let cases: Vec<Case> = vec![
            (Auto, &new, vec![], false, Ok(Builder::BuildKit)),
            (
                Auto,
                &new,
                vec![Feature::RunMount],
                true,
                Ok(Builder::BuildKit),
            ),
            (BuildKit, &new, vec![], false, Ok(Builder::BuildKit)),
            (Auto, &old, vec![], false, Ok(Builder::Legacy)),
            (Auto, &windows, vec![], false, Ok(Builder::Legacy)),
            (Legacy, &new, vec![], false, Ok(Builder::Legacy)),
            // directives are ignored by the classic builder: a warning, not an error
            (
                Legacy,
                &new,
                vec![Feature::CheckDirective],
                false,
                Ok(Builder::Legacy),
            ),
            (Legacy, &new, vec![Feature::Heredoc], false, Err(2)),
            (Legacy, &new, vec![], true, Err(2)),
            (Auto, &old, vec![Feature::CopyLink], false, Err(1)),
            (Auto, &old, vec![], true, Err(1)),
            (BuildKit, &old, vec![], false, Err(1)),
            (Auto, &tls, vec![], false, Ok(Builder::Legacy)),
            (Auto, &tls, vec![Feature::RunMount], false, Err(1)),
            (BuildKit, &tls, vec![], false, Err(1)),
        ];
        for (asked, facts, features, secrets, want) in cases {
            let got = choose(asked, facts, &uses(&features), secrets)
                .map(|c| c.builder)
                .map_err(|e| e.exit.code());
            assert_eq!(
                got, want,
                "{asked:?} {facts:?} {features:?} secrets={secrets}"
            );
        }
    }

    #[test]
    fn the_messages_name_the_feature_its_line_and_the_fix() {
        let new = engine("26.1.5", "1.45", "linux");
        let err = choose(
            BuilderChoice::Legacy,
            &new,
            &uses(&[Feature::RunMount, Feature::SyntaxDirective]),
            false,
        )
        .unwrap_err();
        assert!(
            err.message.contains("RUN --mount (line 2)"),
            "{}",
            err.message
        );
        assert!(err.message.contains("drop --builder legacy"));
        let chosen = choose(
            BuilderChoice::Legacy,
            &new,
            &uses(&[Feature::CheckDirective]),
            false,
        )
        .unwrap();
        assert_eq!(chosen.warnings.len(), 1);
        assert!(chosen.warnings[0].contains("line 2"));
        assert_eq!(chosen.why, "asked with --builder legacy");
        let chosen = choose(BuilderChoice::Auto, &new, &[], false).unwrap();
        assert_eq!(chosen.why, "Docker Engine 26.1.5");
        let old = engine("18.06.1", "1.38", "linux");
        let err = choose(BuilderChoice::Auto, &old, &[], true).unwrap_err();
        assert!(err.message.contains("--secret"));
        assert!(err.message.contains("version 18.06.1"));
    }

    #[test]
    fn build_checks_on_an_engine_whose_frontend_predates_them_are_warned_about() {
        let check = uses(&[Feature::CheckDirective]);
        let warned = |facts: &EngineFacts, u: &[FeatureUse]| {
            choose(BuilderChoice::Auto, facts, u, false)
                .unwrap()
                .warnings
                .len()
        };
        assert_eq!(warned(&engine("26.1.5", "1.45", "linux"), &check), 1);
        assert_eq!(warned(&engine("27.3.1", "1.47", "linux"), &check), 0);
        let with_syntax = uses(&[Feature::SyntaxDirective, Feature::CheckDirective]);
        assert_eq!(warned(&engine("26.1.5", "1.45", "linux"), &with_syntax), 0);
        assert_eq!(warned(&engine("26.1.5", "1.45", "linux"), &[]), 0);
    }

    #[test]
    fn an_old_frontend_that_cannot_read_new_syntax_gets_a_hint() {
        let old = engine("20.10.24+dfsg1", "1.41", "linux");
        let new = engine("26.1.5", "1.45", "linux");
        let heredoc = uses(&[Feature::Heredoc]);
        let msg = "dockerfile parse error on line 3: unknown instruction: hello";
        let hint = frontend_hint(msg, &heredoc, &old).unwrap();
        assert!(hint.contains("20.10.24+dfsg1") && hint.contains("23 or later"));
        assert!(hint.contains("heredoc") || hint.contains("<<"), "{hint}");
        assert_eq!(frontend_hint(msg, &heredoc, &new), None);
        assert_eq!(frontend_hint("exit code: 1", &heredoc, &old), None);
        assert_eq!(frontend_hint(msg, &uses(&[Feature::RunMount]), &old), None);
        let with_syntax = uses(&[Feature::SyntaxDirective, Feature::Heredoc]);
        assert_eq!(frontend_hint(msg, &with_syntax, &old), None);
    }
}
