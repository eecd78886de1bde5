//! Everything that touches the Docker engine: the build context, the build, the push.

pub mod build;
pub mod context;
pub mod engine;
pub mod ignore;
pub mod publish;
pub mod push;
pub mod reference;
pub mod tarentry;
