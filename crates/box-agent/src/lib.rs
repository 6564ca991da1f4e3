//! The box agent: the process that runs inside every box. It clones the project's repository,
//! works on the box's own branch, runs the coding agent for each phase (spec, revise,
//! implement, changes), streams the agent's output to Apiary in batches, serves the control
//! plane (DESIGN §3) and reports back through the callback API.
//!
//! Its only input is the boot env (DESIGN §4); it binds the control plane first and announces
//! the port in `$APIARY_BOX_DIR/control.json`, then clones and specs in the background.
//!
//! Invariants a reviewer can check:
//! - the box agent never touches the database; it talks to Apiary only through the callback
//!   API with its own token, and is driven only through the control plane behind its own;
//! - the agent process never sees the box's tokens: they are removed from its environment (by
//!   name and by value), and when bubblewrap works it runs in a sandbox of its own;
//! - one agent run at a time; a run past its timeout is killed with its whole process group,
//!   and a run's leftovers are killed when it ends;
//! - the agent never commits or pushes: the box commits everything, pushes only its own
//!   branch, and never commits `.apiary/` (the spec);
//! - every run ends with exactly one result callback (spec, PR or error), sent after the run's
//!   log lines went out;
//! - a box whose Apiary is gone for good (401/404 to a callback, or no answer for `orphan_s`)
//!   stops its agent, empties its folder and exits: no box outlives its owner.

mod callback;
mod code;
mod config;
mod control;
pub mod egress;
mod forge;
mod gateway;
mod git;
mod logs;
mod orphan;
mod phases;
mod presets;
mod preview;
mod prompts;
mod runner;
mod spec;
mod transcript;

use std::sync::Arc;

use anyhow::{Context, Result};

pub use config::{AgentSandbox, BoxAgentConfig};

use std::time::Duration;

/// Runs the box agent until the process is killed (`apiary box-agent`).
pub async fn run(config: BoxAgentConfig) -> Result<()> {
    run_until(config, std::future::pending()).await
}

/// Runs the box agent until `shutdown` resolves, so tests can stop it (a run in progress is
/// dropped with the runtime, which kills its process group), or until its Apiary is gone for
/// good: then the agent is stopped and the box's folder emptied before it returns.
pub async fn run_until(
    config: BoxAgentConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(&config.control_bind)
        .await
        .with_context(|| format!("binding the control plane on {}", config.control_bind))?;
    let port = listener.local_addr()?.port();
    let orphan_after = Duration::from_secs(config.orphan_s);
    let agent = Arc::new(phases::Agent::new(config)?);
    // The agent's only way out (under its sandbox): the allowlisting proxy on a Unix socket.
    let _egress = match (&agent.cfg.egress, agent.cfg.sandbox) {
        (Some(allow), AgentSandbox::Bwrap) => Some(egress::serve(
            &runner::egress_socket(&agent.cfg.box_dir),
            allow.clone(),
            agent.logs(),
            agent.cfg.egress_upstream.clone(),
        )?),
        _ => None,
    };
    // The model gateway, local to the sandboxed agent's namespace.
    let _gateway = match (&agent.cfg.egress, agent.cfg.sandbox) {
        (Some(_), AgentSandbox::Bwrap) => Some(gateway::serve(
            &gateway::socket(&agent.cfg.box_dir),
            &agent.cfg.apiary_url,
        )?),
        _ => None,
    };
    agent.announce(port)?;
    let setup = agent.clone();
    tokio::spawn(async move { setup.start().await });
    let live = agent.liveness();
    let pinger = agent.clone();
    let (why_tx, why_rx) = tokio::sync::oneshot::channel::<String>();
    let stop = async move {
        let watch = orphan::orphaned(&live, orphan_after, || pinger.ping());
        tokio::select! {
            _ = shutdown => {}
            why = watch => { let _ = why_tx.send(why); }
        }
    };
    axum::serve(listener, control::router(agent.clone()))
        .with_graceful_shutdown(stop)
        .await
        .context("serving the control plane")?;
    // However the box ends, its preview ends with it.
    agent.preview.stop(&agent.logs()).await;
    if let Ok(why) = why_rx.await {
        tracing::warn!(reason = %why, "the box's Apiary is gone: stopping the agent, emptying the box, exiting");
        agent.stop().await;
        orphan::clean(&agent.cfg.box_dir);
    }
    Ok(())
}
