//! Builds the one SDK configuration every AWS client shares: the standard credential and
//! endpoint chain, the region, retries and timeouts.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};

use crate::error::{Error, Result};

/// Attempts per SDK call (first try included); throttling and transient errors are retried
/// with the SDK's jittered backoff. ECS throttles busy accounts, and a deploy should wait that
/// out rather than fail half-done.
const MAX_ATTEMPTS: u32 = 6;

/// The longest single wait between attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Loads configuration from the environment, profile, web identity (OIDC) and
/// `AWS_ENDPOINT_URL*`, with `region` overriding the chain.
pub async fn load(region: Option<&str>) -> Result<SdkConfig> {
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
    let config = loader.load().await;
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
