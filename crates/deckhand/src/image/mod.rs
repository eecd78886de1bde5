//! Everything that touches the Docker engine: the build context, the build, the push.

pub mod build;
pub mod builder;
pub mod buildkit;
pub mod context;
pub mod dispatch;
pub mod dockerfile;
pub mod engine;
pub mod filesync;
pub mod ignore;
pub mod options;
pub mod progress;
pub mod publish;
pub mod push;
pub mod reference;
pub mod session;
pub mod tarentry;
pub mod wire;
