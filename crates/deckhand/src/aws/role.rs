//! `--role-to-assume`: AssumeRoleWithWebIdentity with the CI's OIDC token, and credentials
//! that are assumed again before they expire, shared by every AWS client of the process.

use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use aws_credential_types::provider::SharedCredentialsProvider;
use aws_credential_types::provider::{self, error::CredentialsError, future, ProvideCredentials};
use aws_credential_types::Credentials;
use aws_smithy_types::date_time::Format;

use super::oidc;
use crate::error::{Error, Result};
use crate::report::Reporter;
use crate::settings::RoleSettings;

/// The assumed role's credentials, once taken on: what [`super::config::load`] gives clients.
static ASSUMED: OnceLock<SharedCredentialsProvider> = OnceLock::new();

/// The SDK's credential cache asks for new credentials this long before they expire.
pub const REFRESH_BEFORE: Duration = Duration::from_secs(5 * 60);

/// How long the SDK waits for a refresh (a token request and an STS call, with retries).
pub const REFRESH_TIMEOUT: Duration = Duration::from_secs(60);

/// The credentials provider of the role taken on, if one was.
pub fn assumed() -> Option<SharedCredentialsProvider> {
    ASSUMED.get().cloned()
}

/// Assumes `role` (if any) with the CI's token before the command's first AWS call, logs
/// which role until when, and keeps its credentials for every client the process makes.
pub async fn take_on(r: &Reporter, role: Option<RoleSettings>, region: Option<&str>) -> Result<()> {
    let Some(role) = role else {
        return Ok(());
    };
    if ASSUMED.get().is_some() {
        return Ok(());
    }
    if let oidc::TokenSource::Github { request_token, .. } = &role.source {
        crate::redact::register(request_token);
    }
    let sts = aws_sdk_sts::Client::new(&super::config::unsigned(region).await?);
    let credentials = assume(&sts, &role).await?;
    let until = credentials
        .expiry()
        .map(|t| {
            aws_smithy_types::DateTime::from(t)
                .fmt(Format::DateTime)
                .unwrap_or_default()
        })
        .unwrap_or_else(|| "unknown".into());
    r.step(format!(
        "assumed role {} (session {}) with {}; credentials until {until}",
        role.role_arn,
        role.session_name,
        role.source.describe()
    ));
    let provider = Assumed {
        role,
        sts,
        current: tokio::sync::Mutex::new(credentials),
    };
    let _ = ASSUMED.set(SharedCredentialsProvider::new(provider));
    Ok(())
}

/// One AssumeRoleWithWebIdentity with a token read now; the credentials are registered as
/// secrets before anything can print them.
async fn assume(sts: &aws_sdk_sts::Client, role: &RoleSettings) -> Result<Credentials> {
    let token = oidc::fetch(&role.source).await?;
    let out = sts
        .assume_role_with_web_identity()
        .role_arn(&role.role_arn)
        .role_session_name(&role.session_name)
        .web_identity_token(&token)
        .set_duration_seconds(role.duration.map(|d| d.as_secs() as i32))
        .send()
        .await
        .map_err(|e| {
            let why = super::failure("STS AssumeRoleWithWebIdentity", &e);
            Error::failed(format!(
                "could not assume role {} with {} ({})",
                role.role_arn,
                role.source.describe(),
                why.message
            ))
            .with_kind(why.kind)
        })?;
    let c = out.credentials().ok_or_else(|| {
        Error::failed("STS AssumeRoleWithWebIdentity answered without credentials")
    })?;
    for secret in [c.access_key_id(), c.secret_access_key(), c.session_token()] {
        crate::redact::register(secret);
    }
    let expiry = SystemTime::try_from(*c.expiration()).ok();
    Ok(Credentials::new(
        c.access_key_id(),
        c.secret_access_key(),
        Some(c.session_token().to_string()),
        expiry,
        "deckhand --role-to-assume",
    ))
}

/// Whether credentials that expire at `expiry` are to be replaced at `now` (pure): a little
/// before the SDK's cache would ask again, so the ones it gets then are new.
pub fn stale(expiry: Option<SystemTime>, now: SystemTime) -> bool {
    let Some(expiry) = expiry else {
        return false;
    };
    match expiry.duration_since(now) {
        Ok(left) => left <= REFRESH_BEFORE + Duration::from_secs(60),
        Err(_) => true,
    }
}

/// The role's credentials: the first ones, then new ones assumed with a new token when those
/// are about to expire (a deploy may outlast a role session).
#[derive(Debug)]
struct Assumed {
    role: RoleSettings,
    sts: aws_sdk_sts::Client,
    current: tokio::sync::Mutex<Credentials>,
}

impl Assumed {
    async fn fresh(&self) -> provider::Result {
        let mut current = self.current.lock().await;
        if !stale(current.expiry(), SystemTime::now()) {
            return Ok(current.clone());
        }
        match assume(&self.sts, &self.role).await {
            Ok(new) => {
                *current = new.clone();
                Ok(new)
            }
            Err(e) => Err(CredentialsError::provider_error(e.message)),
        }
    }
}

impl ProvideCredentials for Assumed {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(self.fresh())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_replaced_before_they_expire() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let mins = |m: u64| Duration::from_secs(m * 60);
        for (expiry, want) in [
            (None, false),
            (Some(now + mins(60)), false),
            (Some(now + mins(7)), false),
            (Some(now + mins(6)), true),
            (Some(now + mins(1)), true),
            (Some(now - mins(1)), true),
        ] {
            assert_eq!(stale(expiry, now), want, "{expiry:?}");
        }
    }
}
