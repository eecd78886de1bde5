//! Thin edges to the AWS APIs: one SDK configuration (and the role it may assume), ECR and
//! STS calls, no decisions.

pub mod codedeploy;
pub mod config;
pub mod ecr;
pub mod ecs;
pub mod logs;
pub mod oidc;
pub mod role;
pub mod sdeploy;
pub mod sts;
pub mod types;

use aws_sdk_ecs::error::ProvideErrorMetadata;
use aws_sdk_ecs::operation::RequestId;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;

/// The innermost cause of an error, in one line: what a person can act on ("Connection
/// refused (os error 111)"), without the layers of wrapping above it.
pub fn describe<E: std::error::Error>(err: &E) -> String {
    let mut cause: &dyn std::error::Error = err;
    while let Some(next) = cause.source() {
        cause = next;
    }
    one_line(&cause.to_string())
}

/// A failed SDK call as deckhand's error, in one line (see [`explain`]), of the kind
/// [`kind_of`] says. `what` names the service and operation: "ECS UpdateService".
pub fn failure<E>(what: &str, e: &SdkError<E, HttpResponse>) -> crate::error::Error
where
    E: std::error::Error + ProvideErrorMetadata + 'static,
{
    crate::error::Error::failed(explain(what, e)).with_kind(kind_of(e))
}

/// What went wrong with one SDK call, as the parts a person needs (pure to render).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failed {
    /// AWS answered with an error.
    Refused {
        code: String,
        message: String,
        request: Option<String>,
    },
    /// No answer: the endpoint could not be reached, or did not answer in time.
    Unreachable { endpoint: String, cause: String },
    /// An answer came but could not be read.
    Unreadable { endpoint: String, cause: String },
    /// The request was never sent (bad input to the SDK, no credentials).
    NotSent { cause: String },
}

/// `what` and how it failed in one line: "ECS UpdateService: ThrottlingException: Rate
/// exceeded (request 8f2…)", "ECS DescribeServices: the API at https://… could not be reached
/// (Connection refused)".
pub fn render(what: &str, failed: &Failed) -> String {
    match failed {
        Failed::Refused {
            code,
            message,
            request,
        } => {
            let code = if code.is_empty() { "error" } else { code };
            let message = one_line(message);
            let request = request
                .as_deref()
                .map(|id| format!(" (request {id})"))
                .unwrap_or_default();
            if message.is_empty() {
                format!("{what}: {code}{request}")
            } else {
                format!("{what}: {code}: {message}{request}")
            }
        }
        Failed::Unreachable { endpoint, cause } => {
            format!("{what}: the API at {endpoint} could not be reached ({cause})")
        }
        Failed::Unreadable { endpoint, cause } => {
            format!("{what}: the answer from {endpoint} could not be read ({cause})")
        }
        Failed::NotSent { cause } => format!("{what}: the request was not sent ({cause})"),
    }
}

/// An SDK error as its [`Failed`] parts, rendered: `what` names the service ("ECS", "ECR",
/// "STS", "CloudWatch Logs") and the operation.
pub fn explain<E>(what: &str, e: &SdkError<E, HttpResponse>) -> String
where
    E: std::error::Error + ProvideErrorMetadata + 'static,
{
    let endpoint = || config::endpoint(what.split(' ').next().unwrap_or_default());
    let failed = match e {
        SdkError::ServiceError(se) => Failed::Refused {
            code: se.err().code().unwrap_or_default().to_string(),
            message: se
                .err()
                .message()
                .map(str::to_string)
                .unwrap_or_else(|| format!("HTTP {}", se.raw().status().as_u16())),
            request: e.request_id().map(str::to_string),
        },
        SdkError::TimeoutError(_) => Failed::Unreachable {
            endpoint: endpoint(),
            cause: "no answer in time".into(),
        },
        SdkError::DispatchFailure(_) => Failed::Unreachable {
            endpoint: endpoint(),
            cause: describe(e),
        },
        SdkError::ResponseError(_) => Failed::Unreadable {
            endpoint: endpoint(),
            cause: describe(e),
        },
        _ => Failed::NotSent { cause: describe(e) },
    };
    render(what, &failed)
}

/// `text` on one line, without the trailing dot-space noise of multi-line messages.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// What kind of failure an SDK error is: throttling, another transient failure (a 5xx, a
/// timeout, a connection that failed or dropped), or one that another try will not change.
pub fn kind_of<E: ProvideErrorMetadata>(e: &SdkError<E, HttpResponse>) -> crate::error::Kind {
    use crate::error::Kind;
    match e {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => Kind::Unreachable,
        SdkError::ResponseError(_) => Kind::Transient,
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

    #[test]
    fn failures_read_as_one_line() {
        let refused = |code: &str, message: &str, request: Option<&str>| Failed::Refused {
            code: code.into(),
            message: message.into(),
            request: request.map(str::to_string),
        };
        let cases = [
            (
                refused("ThrottlingException", "Rate exceeded", Some("8f2a-11")),
                "ECS UpdateService: ThrottlingException: Rate exceeded (request 8f2a-11)",
            ),
            (
                refused("ClientException", "Bad\n  request.\n", None),
                "ECS UpdateService: ClientException: Bad request.",
            ),
            (
                refused("", "", Some("r1")),
                "ECS UpdateService: error (request r1)",
            ),
            (
                Failed::Unreachable {
                    endpoint: "http://127.0.0.1:9".into(),
                    cause: "Connection refused (os error 111)".into(),
                },
                "ECS UpdateService: the API at http://127.0.0.1:9 could not be reached \
                 (Connection refused (os error 111))",
            ),
            (
                Failed::Unreadable {
                    endpoint: "https://ecs.eu-west-1.amazonaws.com".into(),
                    cause: "unexpected EOF".into(),
                },
                "ECS UpdateService: the answer from https://ecs.eu-west-1.amazonaws.com could \
                 not be read (unexpected EOF)",
            ),
            (
                Failed::NotSent {
                    cause: "no credentials".into(),
                },
                "ECS UpdateService: the request was not sent (no credentials)",
            ),
        ];
        for (failed, want) in cases {
            assert_eq!(render("ECS UpdateService", &failed), want);
        }
    }

    #[test]
    fn the_innermost_cause_is_described() {
        #[derive(Debug)]
        struct Outer(std::io::Error);
        impl std::fmt::Display for Outer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("dispatch failure")
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let e = Outer(std::io::Error::other("Connection refused"));
        assert_eq!(describe(&e), "Connection refused");
    }
}
