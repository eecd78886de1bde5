//! deckhand: a deploy agent for Amazon ECS. The binary is a thin shell over this library.

pub mod aws;
pub mod cli;
pub mod clock;
pub mod cmd;
pub mod config;
pub mod deploy;
pub mod error;
pub mod git;
pub mod image;
pub mod logging;
pub mod output;
pub mod redact;
pub mod report;
pub mod secrets;
pub mod settings;
pub mod signals;
