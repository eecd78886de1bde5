//! The one integration-test binary: every test here talks to the local bed (Docker engine,
//! registry, moto) over loopback. Start it with `scripts/test`, or `scripts/bed up` and
//! `. .bed/env` before `cargo test`.

mod action;
mod bed;
mod buildkit;
mod ci;
mod cli;
mod clients;
mod codedeploy;
mod context;
mod deploy;
mod differential;
mod explain;
mod faults;
mod fleet;
mod image;
mod init;
mod oidc;
mod oneoff;
mod push;
mod render;
mod rollback;
mod rollout;
mod sandbox;
mod snapshots;
mod strategies;
mod taskset;
