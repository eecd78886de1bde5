//! Deploying a new image to ECS services: what to register, and how to judge the result.

pub mod appspec;
pub mod bluegreen;
pub mod codedeploy;
pub mod decide;
pub mod history;
pub mod oneoff;
pub mod overrides;
pub mod persist;
pub mod pipeline;
pub mod predeploy;
pub mod render;
pub mod rollback;
pub mod rollout;
pub mod scaffold;
pub mod shape;
pub mod taskdef;
pub mod tasklogs;
pub mod verdict;
pub mod watch;

/// How a pipeline that got as far as a result ended: the result object and the exit code the
/// README's table gives it.
#[derive(Debug, Clone)]
pub struct Outcome<R> {
    pub result: R,
    pub exit: crate::error::Exit,
}
