//! Thin edges to the AWS APIs: one SDK configuration, ECR and STS calls, no decisions.

pub mod config;
pub mod ecr;
pub mod ecs;
pub mod logs;
pub mod sts;
pub mod types;

/// The SDK's full error chain as one line, for messages a person reads.
pub fn describe<E: std::error::Error>(err: &E) -> String {
    aws_sdk_ecr::error::DisplayErrorContext(err).to_string()
}

/// The kind of failure an SDK error is, from the error code AWS answered with.
pub fn kind_of(
    err: &impl aws_smithy_types::error::metadata::ProvideErrorMetadata,
) -> crate::error::Kind {
    kind_of_code(err.code())
}

/// The kind of failure an AWS error code names (pure): the codes AWS services use for
/// "too many requests, slow down" are [`Kind::Throttled`](crate::error::Kind::Throttled).
pub fn kind_of_code(code: Option<&str>) -> crate::error::Kind {
    use crate::error::Kind;
    match code {
        Some(
            "ThrottlingException"
            | "Throttling"
            | "ThrottledException"
            | "RequestThrottledException"
            | "TooManyRequestsException"
            | "RequestLimitExceeded"
            | "SlowDown",
        ) => Kind::Throttled,
        _ => Kind::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Kind;

    #[test]
    fn throttling_codes_are_told_apart() {
        for (code, kind) in [
            (Some("ThrottlingException"), Kind::Throttled),
            (Some("TooManyRequestsException"), Kind::Throttled),
            (Some("RequestLimitExceeded"), Kind::Throttled),
            (Some("ClusterNotFoundException"), Kind::Other),
            (Some("ServerException"), Kind::Other),
            (Some("throttlingexception"), Kind::Other),
            (None, Kind::Other),
        ] {
            assert_eq!(kind_of_code(code), kind, "{code:?}");
        }
    }
}
