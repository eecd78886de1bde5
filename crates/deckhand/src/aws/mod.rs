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
