//! `deckhand sandbox`: runs the local ECS until interrupted, then removes its containers.

use crate::cli::{GlobalArgs, SandboxArgs};
use crate::error::Result;
use crate::image::engine;
use deckhand_sandbox::faults::Faults;
use deckhand_sandbox::model::Mode;
use deckhand_sandbox::{Options, Sandbox, StartError};

/// Serves until SIGINT or SIGTERM.
pub async fn run(
    r: &crate::report::Reporter,
    global: &GlobalArgs,
    args: &SandboxArgs,
) -> Result<()> {
    let docker = engine::connect().await?;
    let options = Options {
        listen: args.listen,
        tick: args.tick,
        time_scale: args.time_scale,
        stable_after: args.stable_after,
        mode: Mode {
            late_running_count: args.late_running_count,
            without_service_deployments: args.without_service_deployments,
            ..Mode::default()
        },
        memory_mib: args.memory,
        cpu_units: args.cpu,
        region: global.region.clone().unwrap_or_else(|| "us-east-1".into()),
        account: args.account.clone(),
        faults: Faults {
            latency_ms: args.latency.as_millis() as u64,
            throttle_rate: args.throttle_rate,
            error_rate: args.error_rate,
            drop_rate: args.drop_rate,
            lost_answer_rate: args.lost_answer_rate,
            operations: args.fault_operations.clone(),
        },
        data_dir: args.data.clone(),
    };
    let sandbox = Sandbox::start(options, docker).await.map_err(|e| match e {
        StartError::Options(m) => crate::error::Error::usage(m),
        StartError::Unavailable(m) => crate::error::Error::failed(m),
    })?;
    crate::redact::register(sandbox.password());
    let endpoint = sandbox.endpoint();
    r.step(format!(
        "sandbox: ECS, ECR, CodeDeploy, CloudWatch Logs, STS and the image registry listening on \
         {endpoint}"
    ));
    r.step(format!(
        "point AWS tools at it with: export AWS_ENDPOINT_URL={endpoint}"
    ));
    crate::redact::println_stdout(&endpoint);
    crate::signals::interrupted().await;
    r.step("sandbox: stopping; removing its containers");
    sandbox.stop().await;
    Ok(())
}
