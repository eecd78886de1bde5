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

/// A failed SDK call as deckhand's error: "`what` failed: …", of the kind [`kind_of`] says.
pub fn failure<E>(what: &str, e: &SdkError<E, HttpResponse>) -> crate::error::Error
where
    E: std::error::Error + ProvideErrorMetadata + 'static,
{
    crate::error::Error::failed(format!("{what} failed: {}", describe(e))).with_kind(kind_of(e))
}

/// What kind of failure an SDK error is: throttling, another transient failure (a 5xx, a
/// timeout, a connection that failed or dropped), or one that another try will not change.
pub fn kind_of<E: ProvideErrorMetadata>(e: &SdkError<E, HttpResponse>) -> crate::error::Kind {
    use crate::error::Kind;
    match e {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            Kind::Transient
        }
        SdkError::ServiceError(se) => match kind_of_code(se.err().code()) {
            Kind::Other if se.raw().status().is_server_error() => Kind::Transient,
            kind => kind,
        },
        _ => Kind::Other,
    }
}

/// The kind of failure an AWS error code names (pure): the codes AWS services use for "too
/// many requests, slow down" are throttling; those for "failed on our side, try again" are
/// transient.
pub fn kind_of_code(code: Option<&str>) -> crate::error::Kind {
    use crate::error::Kind;
    match code {
        Some(
            "ThrottlingException"
            | "Throttling"
            | "ThrottledException"
            | "RequestThrottled"
            | "RequestThrottledException"
            | "TooManyRequestsException"
            | "RequestLimitExceeded"
            | "SlowDown",
        ) => Kind::Throttled,
        Some(
            "ServerException"
            | "ServiceUnavailable"
            | "ServiceUnavailableException"
            | "InternalFailure"
            | "InternalServerError",
        ) => Kind::Transient,
        _ => Kind::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Kind;

    #[test]
    fn throttling_and_transient_codes_are_told_apart() {
        for (code, kind) in [
            (Some("ThrottlingException"), Kind::Throttled),
            (Some("TooManyRequestsException"), Kind::Throttled),
            (Some("RequestLimitExceeded"), Kind::Throttled),
            (Some("ServerException"), Kind::Transient),
            (Some("ServiceUnavailableException"), Kind::Transient),
            (Some("ClusterNotFoundException"), Kind::Other),
            (Some("throttlingexception"), Kind::Other),
            (None, Kind::Other),
        ] {
            assert_eq!(kind_of_code(code), kind, "{code:?}");
        }
    }
}
