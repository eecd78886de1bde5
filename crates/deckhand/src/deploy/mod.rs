//! Deploying a new image to ECS services: what to register, and how to judge the result.

pub mod decide;
pub mod history;
pub mod pipeline;
pub mod predeploy;
pub mod rollback;
pub mod rollout;
pub mod taskdef;
pub mod verdict;
pub mod watch;
