//! Deploying a new image to ECS services: what to register, and how to judge the result.

pub mod decide;
pub mod history;
pub mod predeploy;
pub mod taskdef;
pub mod verdict;
pub mod watch;
