//! `--role-to-assume` and its companions, resolved (command line and `DECKHAND_*` over
//! deckhand.toml over defaults) and checked before any AWS call, the token's source included.

use std::time::Duration;

use regex::Regex;

use crate::aws::oidc::{self, TokenSource};
use crate::cli::RoleArgs;
use crate::config;
use crate::error::{Error, Result};

/// The role to assume and how, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleSettings {
    pub role_arn: String,
    pub session_name: String,
    /// `None`: STS's default (one hour).
    pub duration: Option<Duration>,
    pub source: TokenSource,
}

/// The shortest and longest role sessions STS grants.
pub const MIN_DURATION: Duration = Duration::from_secs(900);
pub const MAX_DURATION: Duration = Duration::from_secs(43_200);

impl RoleSettings {
    /// The role to assume, if `--role-to-assume` (or `role-to-assume` in the file) names one;
    /// the companion flags without it are a usage error, as is a role without a token.
    pub fn resolve(
        args: &RoleArgs,
        file: Option<&config::File>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<RoleSettings>> {
        let pick = |flag: &Option<String>, key: fn(&config::File) -> Option<String>| {
            flag.clone()
                .or_else(|| file.and_then(key))
                .filter(|v| !v.trim().is_empty())
        };
        let role = pick(&args.role_to_assume, |f| f.role_to_assume.clone());
        let session = pick(&args.role_session_name, |f| f.role_session_name.clone());
        let audience = pick(&args.audience, |f| f.audience.clone());
        let token_env = pick(&args.web_identity_token_env, |f| {
            f.web_identity_token_env.clone()
        });
        let duration = args
            .role_duration
            .or_else(|| file.and_then(|f| f.role_duration));
        let Some(role_arn) = role else {
            let stray = [
                ("--role-session-name", session.is_some()),
                ("--role-duration", duration.is_some()),
                ("--audience", audience.is_some()),
                ("--web-identity-token-env", token_env.is_some()),
            ];
            if let Some((flag, _)) = stray.iter().find(|(_, given)| *given) {
                return Err(Error::usage(format!(
                    "{flag} is only used with --role-to-assume ARN (or role-to-assume in \
                     deckhand.toml); add the role, or leave {flag} out."
                )));
            }
            return Ok(None);
        };
        let role_arn = role_arn.trim().to_string();
        if !arn_pattern().is_match(&role_arn) {
            return Err(Error::usage(format!(
                "--role-to-assume {role_arn:?} is not an IAM role ARN; give one such as \
                 arn:aws:iam::123456789012:role/deploy."
            )));
        }
        let session_name = match session {
            Some(name) if session_pattern().is_match(&name) => name,
            Some(name) => {
                return Err(Error::usage(format!(
                    "--role-session-name {name:?} is not one STS accepts: use 2 to 64 letters, \
                     digits and +=,.@_- only."
                )))
            }
            None => default_session_name(&env),
        };
        if let Some(d) = duration {
            if d < MIN_DURATION || d > MAX_DURATION || d.subsec_nanos() != 0 {
                return Err(Error::usage(format!(
                    "--role-duration {}s is outside what STS grants: use whole seconds from 15m \
                     to 12h (and no longer than the role's maximum session duration).",
                    d.as_secs_f64()
                )));
            }
        }
        let audience = audience.unwrap_or_else(|| oidc::DEFAULT_AUDIENCE.to_string());
        let source = oidc::token_source(token_env.as_deref(), &audience, &env)?;
        Ok(Some(RoleSettings {
            role_arn,
            session_name,
            duration,
            source,
        }))
    }
}

fn arn_pattern() -> Regex {
    Regex::new(r"^arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9_+=,.@/-]+$").expect("valid pattern")
}

fn session_pattern() -> Regex {
    Regex::new(r"^[A-Za-z0-9_+=,.@-]{2,64}$").expect("valid pattern")
}

/// `deckhand-<id>`: GitHub's run id (and attempt), GitLab's job id, Jenkins' build tag, else
/// the commit, else plain `deckhand`; cut to what STS accepts (pure).
pub fn default_session_name(env: impl Fn(&str) -> Option<String>) -> String {
    let get = |k: &str| env(k).filter(|v| !v.trim().is_empty());
    let id = if let Some(run) = get("GITHUB_RUN_ID") {
        match get("GITHUB_RUN_ATTEMPT") {
            Some(attempt) => Some(format!("{run}-{attempt}")),
            None => Some(run),
        }
    } else {
        get("CI_JOB_ID").or_else(|| get("BUILD_TAG")).or_else(|| {
            ["GITHUB_SHA", "CI_COMMIT_SHA", "GIT_COMMIT"]
                .iter()
                .find_map(|k| get(k))
                .map(|sha| sha.chars().take(12).collect())
        })
    };
    let name = match id {
        Some(id) => format!("deckhand-{id}"),
        None => "deckhand".to_string(),
    };
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_+=,.@-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Exit;

    const ARN: &str = "arn:aws:iam::123456789012:role/deploy";

    fn args(role: Option<&str>) -> RoleArgs {
        RoleArgs {
            role_to_assume: role.map(str::to_string),
            ..RoleArgs::default()
        }
    }

    fn gitlab(k: &str) -> Option<String> {
        match k {
            "GITLAB_CI" => Some("true".into()),
            "CI_JOB_ID" => Some("4711".into()),
            "AWS_ID_TOKEN" => Some("eyJ.x.y".into()),
            _ => None,
        }
    }

    #[test]
    fn a_role_is_checked_and_given_defaults() {
        let mut a = args(Some(ARN));
        a.web_identity_token_env = Some("AWS_ID_TOKEN".into());
        let s = RoleSettings::resolve(&a, None, gitlab).unwrap().unwrap();
        assert_eq!(s.role_arn, ARN);
        assert_eq!(s.session_name, "deckhand-4711");
        assert_eq!(s.duration, None);
        assert_eq!(
            s.source,
            TokenSource::Variable {
                name: "AWS_ID_TOKEN".into()
            }
        );
        assert_eq!(
            RoleSettings::resolve(&args(None), None, gitlab).unwrap(),
            None
        );
    }

    #[test]
    fn the_file_fills_in_and_flags_win() {
        let file = config::File {
            role_to_assume: Some("arn:aws:iam::210987654321:role/file".into()),
            role_duration: Some(Duration::from_secs(7200)),
            web_identity_token_env: Some("AWS_ID_TOKEN".into()),
            ..Default::default()
        };
        let s = RoleSettings::resolve(&args(None), Some(&file), gitlab)
            .unwrap()
            .unwrap();
        assert_eq!(s.role_arn, "arn:aws:iam::210987654321:role/file");
        assert_eq!(s.duration, Some(Duration::from_secs(7200)));
        let s = RoleSettings::resolve(&args(Some(ARN)), Some(&file), gitlab)
            .unwrap()
            .unwrap();
        assert_eq!(s.role_arn, ARN);
    }

    #[test]
    fn bad_values_are_usage_errors_that_say_what_to_do() {
        let token = |a: &mut RoleArgs| a.web_identity_token_env = Some("AWS_ID_TOKEN".into());
        type Change = Box<dyn Fn(&mut RoleArgs)>;
        let cases: Vec<(Change, &str)> = vec![
            (
                Box::new(|a| a.role_to_assume = Some("deploy".into())),
                "not an IAM role ARN",
            ),
            (
                Box::new(|a| a.role_to_assume = Some("arn:aws:iam::123:role/x".into())),
                "not an IAM role ARN",
            ),
            (
                Box::new(|a| a.role_session_name = Some("has space".into())),
                "2 to 64 letters",
            ),
            (
                Box::new(|a| a.role_session_name = Some("x".into())),
                "2 to 64 letters",
            ),
            (
                Box::new(|a| a.role_duration = Some(Duration::from_secs(600))),
                "from 15m to 12h",
            ),
            (
                Box::new(|a| a.role_duration = Some(Duration::from_secs(13 * 3600))),
                "from 15m to 12h",
            ),
            (
                Box::new(|a| a.web_identity_token_env = Some("MISSING".into())),
                "id_tokens:",
            ),
        ];
        for (change, words) in cases {
            let mut a = args(Some(ARN));
            token(&mut a);
            change(&mut a);
            let e = RoleSettings::resolve(&a, None, gitlab).unwrap_err();
            assert_eq!(e.exit, Exit::Usage, "{}", e.message);
            assert!(e.message.contains(words), "{words}: {}", e.message);
        }
        let mut stray = args(None);
        stray.audience = Some("sts.amazonaws.com".into());
        let e = RoleSettings::resolve(&stray, None, gitlab).unwrap_err();
        assert!(
            e.message
                .contains("--audience is only used with --role-to-assume"),
            "{}",
            e.message
        );
        let mut ok = args(Some(ARN));
        token(&mut ok);
        ok.role_duration = Some(Duration::from_secs(43_200));
        ok.role_session_name = Some("ci@team,web=1".into());
        assert!(RoleSettings::resolve(&ok, None, gitlab).is_ok());
    }

    #[test]
    fn session_names_come_from_the_ci() {
        let of = |vars: &'static [(&'static str, &'static str)]| {
            default_session_name(move |k: &str| {
                vars.iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            })
        };
        assert_eq!(
            of(&[("GITHUB_RUN_ID", "9876"), ("GITHUB_RUN_ATTEMPT", "2")]),
            "deckhand-9876-2"
        );
        assert_eq!(
            of(&[("CI_JOB_ID", "55"), ("GIT_COMMIT", "abc")]),
            "deckhand-55"
        );
        assert_eq!(
            of(&[("BUILD_TAG", "jenkins-team/web-12")]),
            "deckhand-jenkins-team-web-12"
        );
        assert_eq!(
            of(&[("GITHUB_SHA", "0123456789abcdef0123")]),
            "deckhand-0123456789ab"
        );
        assert_eq!(of(&[]), "deckhand");
        let long: &'static str = Box::leak("x".repeat(100).into_boxed_str());
        let vars: &'static [(&'static str, &'static str)] =
            Box::leak(vec![("CI_JOB_ID", long)].into_boxed_slice());
        assert_eq!(of(vars).len(), 64);
    }
}
