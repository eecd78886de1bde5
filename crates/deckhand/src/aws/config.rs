//! Builds the one SDK configuration every AWS client shares: the standard credential and
//! endpoint chain, the region, retries and timeouts.

use std::sync::OnceLock;
use std::time::Duration;

use aws_config::identity::IdentityCache;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, ConfigLoader, Region, SdkConfig};

use crate::error::{Error, Result};

/// Attempts per SDK call (first try included); throttling and transient errors are retried
/// with the SDK's jittered backoff. ECS throttles busy accounts, and a deploy should wait that
/// out rather than fail half-done.
const MAX_ATTEMPTS: u32 = 6;

/// The longest single wait between attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Loads configuration from the environment, profile, web identity (OIDC) and
/// `AWS_ENDPOINT_URL*`, with `region` overriding the chain; with the credentials of the role
/// taken on with `--role-to-assume` ([`super::role`]) instead of the chain's, if one was.
pub async fn load(region: Option<&str>) -> Result<SdkConfig> {
    let mut loader = loader(region);
    if let Some(assumed) = super::role::assumed() {
        loader = loader.credentials_provider(assumed).identity_cache(
            IdentityCache::lazy()
                .buffer_time(super::role::REFRESH_BEFORE)
                .load_timeout(super::role::REFRESH_TIMEOUT)
                .build(),
        );
    }
    checked(loader.load().await)
}

/// A configuration without credentials, for the one call that needs none: STS
/// AssumeRoleWithWebIdentity, which the web-identity token authenticates.
pub async fn unsigned(region: Option<&str>) -> Result<SdkConfig> {
    checked(loader(region).no_credentials().load().await)
}

/// The chain, retries and timeouts every configuration shares.
fn loader(region: Option<&str>) -> ConfigLoader {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(MAX_ATTEMPTS)
                .with_max_backoff(MAX_BACKOFF),
        )
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(5))
                .operation_attempt_timeout(Duration::from_secs(60))
                .build(),
        );
    if let Some(region) = region {
        loader = loader.region(Region::new(region.to_string()));
    }
    loader
}

/// `config`, if it has a region (remembered for naming endpoints in errors).
fn checked(config: SdkConfig) -> Result<SdkConfig> {
    if let Some(region) = config.region() {
        let _ = REGION.set(region.to_string());
    }
    if config.region().is_none() {
        return Err(Error::usage(
            "no AWS region is configured. Pass --region, or set AWS_REGION (or DECKHAND_REGION).",
        ));
    }
    Ok(config)
}

/// The region of a loaded configuration.
pub fn region(config: &SdkConfig) -> String {
    config.region().map(|r| r.to_string()).unwrap_or_default()
}

/// The region the process's configuration was loaded with, for naming endpoints in errors.
static REGION: OnceLock<String> = OnceLock::new();

/// The endpoint a client of `service` ("ECS", "ECR", "STS", "CloudWatch") talks to, as the
/// SDK chooses it: `AWS_ENDPOINT_URL_<SERVICE>`, then `AWS_ENDPOINT_URL`, then AWS's own.
pub fn endpoint(service: &str) -> String {
    let region = REGION.get().map(String::as_str).unwrap_or("<region>");
    endpoint_in(service, region, |k| std::env::var(k).ok())
}

/// [`endpoint`] for `region` in an environment read through `env` (pure).
pub fn endpoint_in(service: &str, region: &str, env: impl Fn(&str) -> Option<String>) -> String {
    let (env_name, host) = match service {
        "ECR" => ("ECR", "api.ecr"),
        "STS" => ("STS", "sts"),
        "CloudWatch" => ("CLOUDWATCH_LOGS", "logs"),
        "CodeDeploy" => ("CODEDEPLOY", "codedeploy"),
        _ => ("ECS", "ecs"),
    };
    env(&format!("AWS_ENDPOINT_URL_{env_name}"))
        .or_else(|| env("AWS_ENDPOINT_URL"))
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| format!("https://{host}.{region}.amazonaws.com"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_follow_the_sdk_variables() {
        let none = |_: &str| None;
        assert_eq!(
            endpoint_in("ECS", "eu-west-1", none),
            "https://ecs.eu-west-1.amazonaws.com"
        );
        assert_eq!(
            endpoint_in("CloudWatch", "us-east-1", none),
            "https://logs.us-east-1.amazonaws.com"
        );
        let global = |k: &str| (k == "AWS_ENDPOINT_URL").then(|| "http://127.0.0.1:5002".into());
        assert_eq!(endpoint_in("ECR", "x", global), "http://127.0.0.1:5002");
        let both = |k: &str| match k {
            "AWS_ENDPOINT_URL_ECS" => Some("http://ecs.local".into()),
            "AWS_ENDPOINT_URL" => Some("http://all.local".into()),
            _ => None,
        };
        assert_eq!(endpoint_in("ECS", "x", both), "http://ecs.local");
        assert_eq!(endpoint_in("STS", "x", both), "http://all.local");
    }
}
