//! Thin edges to the AWS APIs: one SDK configuration, ECR and STS calls, no decisions.

pub mod config;
pub mod ecr;
pub mod ecs;
pub mod logs;
pub mod sts;
pub mod types;

use aws_sdk_ecs::error::ProvideErrorMetadata;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;

/// The SDK's full error chain as one line, for messages a person reads.
pub fn describe<E: std::error::Error>(err: &E) -> String {
    aws_sdk_ecr::error::DisplayErrorContext(err).to_string()
}

/// A failed SDK call as deckhand's error: "`what` failed: …", marked transient when another
/// try may pass (throttling, a 5xx, a timeout, a connection that failed or dropped).
pub fn failure<E>(what: &str, e: &SdkError<E, HttpResponse>) -> crate::error::Error
where
    E: std::error::Error + ProvideErrorMetadata + 'static,
{
    let message = format!("{what} failed: {}", describe(e));
    if is_transient(e) {
        crate::error::Error::transient(message)
    } else {
        crate::error::Error::failed(message)
    }
}

/// Whether another try of the call may pass.
pub fn is_transient<E: ProvideErrorMetadata>(e: &SdkError<E, HttpResponse>) -> bool {
    match e {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(se) => {
            se.raw().status().is_server_error() || transient_code(se.err().code())
        }
        _ => false,
    }
}

/// Error codes AWS uses for "slow down" and "try again" (pure).
pub fn transient_code(code: Option<&str>) -> bool {
    matches!(
        code,
        Some(
            "ThrottlingException"
                | "Throttling"
                | "ThrottledException"
                | "TooManyRequestsException"
                | "RequestLimitExceeded"
                | "RequestThrottled"
                | "RequestThrottledException"
                | "ServerException"
                | "ServiceUnavailable"
                | "ServiceUnavailableException"
                | "InternalFailure"
                | "InternalServerError"
        )
    )
}
