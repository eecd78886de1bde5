//! Who we are: the AWS account the credentials belong to.

use aws_config::SdkConfig;

use crate::error::{Error, Result};

/// The account id from STS GetCallerIdentity.
pub async fn account_id(config: &SdkConfig) -> Result<String> {
    let client = aws_sdk_sts::Client::new(config);
    let out = client.get_caller_identity().send().await.map_err(|e| {
        let why = super::failure("STS GetCallerIdentity", &e);
        Error::failed(format!(
            "could not find the AWS account ({why}). Check the AWS credentials \
             (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or a web-identity role) and \
             AWS_ENDPOINT_URL if you set one."
        ))
        .with_kind(why.kind)
    })?;
    out.account
        .ok_or_else(|| Error::failed("STS GetCallerIdentity returned no account id"))
}
