//! The watchdog (DESIGN §5). One pass, in order: phase timeouts, stalled agents, stranded dispatches, vanished
//! boxes, idle parking, failed-grace teardown, teardown retries, orphan boxes, queue drain. It reads only
//! non-terminal tasks and boxes not yet torn down; only one replica runs a pass at a time
//! (a lease in the database).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use apiary_boxes::{BoxState, INSTALLATION_LABEL, TASK_LABEL};
use apiary_core::AgentStatus;
use apiary_store::{Actor, NewJob, StoreResult, TransitionRequest};
use serde_json::json;

use crate::Orchestrator;

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassSummary {
    pub timed_out: usize,
    /// Agents stopped for making no model request and writing no log line for `stall_s`.
    pub stalled: usize,
    /// Approved specs and requested changes whose dispatch had stopped trying, sent again.
    pub redispatched: usize,
    pub vanished: usize,
    pub parked: usize,
    pub failed_teardowns: usize,
    pub teardown_retries: usize,
    pub orphans: usize,
    /// Set when another replica held the lease and this pass did nothing.
    pub skipped: bool,
}

const LEASE: &str = "watchdog";

impl Orchestrator {
    fn teardown_job(task_id: &str, why: &str) -> NewJob {
        NewJob::new("teardown", json!({ "task_id": task_id, "reason": why }))
            .for_task(task_id)
            .dedupe(&format!("teardown:{task_id}"))
    }

    /// Runs one watchdog pass as `holder` (a replica's name).
    pub async fn watchdog_pass(&self, holder: &str) -> StoreResult<PassSummary> {
        let store = &self.store;
        let settings = store.settings().await?;
        // The lease covers one pass (given back at its end); a replica that dies mid-pass
        // holds the others off for at most this long.
        if !store.try_lease(LEASE, holder, 30_000).await? {
            return Ok(PassSummary {
                skipped: true,
                ..Default::default()
            });
        }
        let mut sum = PassSummary::default();
        let now = store.now();
        let t = &settings.timeouts;
        let provider = self.provider().await.ok();
        let active = store.active_tasks().await?;

        // 1. Phase timeouts (a capacity-blocked `queued` task never times out). Getting an
        // approved spec or a review round to the box (a fresh box for a parked task included)
        // has the provisioning budget; its failure names the dispatch's last error.
        for task in &active {
            let budget = match task.agent_status {
                AgentStatus::Provisioning => t.provisioning_s,
                // A parked task waiting for a free box to resume on is capacity-blocked, like
                // a queued one: no budget until it holds a slot.
                AgentStatus::SpecApproved | AgentStatus::ChangesRequested
                    if !task.box_torn_down =>
                {
                    t.provisioning_s
                }
                AgentStatus::Speccing => t.speccing_s,
                AgentStatus::Implementing => t.implementing_s,
                _ => continue,
            };
            if now - task.status_changed_at > budget as i64 * 1000 {
                let mut error = format!("timed out in {} after {budget} s", task.agent_status);
                if matches!(
                    task.agent_status,
                    AgentStatus::SpecApproved | AgentStatus::ChangesRequested
                ) {
                    if let Some(last) = store.get_task(&task.id).await?.last_error {
                        error.push_str(&format!(": {last}"));
                    }
                }
                if self
                    .transition(
                        TransitionRequest::new(&task.id, AgentStatus::Failed, Actor::System)
                            .with_error(error),
                    )
                    .await
                    .is_ok()
                {
                    sum.timed_out += 1;
                }
            }
        }

        // 1a. Stalled agents: working, yet no model request and no log line for `stall_s`.
        for task in active.iter().filter(|t| {
            !t.box_torn_down
                && matches!(
                    t.agent_status,
                    AgentStatus::Speccing | AgentStatus::Implementing
                )
        }) {
            let last = store
                .last_agent_activity(&task.id)
                .await?
                .unwrap_or(0)
                .max(task.status_changed_at);
            // A task the step above just failed is not counted again.
            if now - last > t.stall_s as i64 * 1000
                && self
                    .transition(
                        TransitionRequest::new(&task.id, AgentStatus::Failed, Actor::System)
                            .with_error(format!(
                                "agent stalled: no model request and no log line for {} s",
                                t.stall_s
                            )),
                    )
                    .await
                    .is_ok_and(|o| o.changed)
            {
                sum.stalled += 1;
            }
        }

        // 1b. Stranded dispatches: an approved spec or a requested change whose dispatch job
        // has stopped (its attempts spent) is dispatched again, until the budget above ends it.
        for task in active.iter().filter(|t| {
            matches!(
                t.agent_status,
                AgentStatus::SpecApproved | AgentStatus::ChangesRequested
            )
        }) {
            let kind = if task.agent_status == AgentStatus::SpecApproved {
                "dispatch_implement"
            } else {
                "dispatch_changes"
            };
            let in_flight = store
                .list_task_jobs(&task.id)
                .await?
                .iter()
                .any(|j| j.kind == kind && (j.state == "pending" || j.state == "running"));
            if in_flight {
                continue;
            }
            let job = NewJob::new(kind, json!({ "task_id": task.id, "reason": "redispatch" }))
                .for_task(&task.id)
                .dedupe(&format!("{kind}:{}", task.id));
            if store.enqueue(job).await?.is_some() {
                tracing::warn!(task = %task.id, kind, "watchdog: dispatching again");
                sum.redispatched += 1;
            }
        }

        // 2. Vanished boxes: the provider says the box is gone. Only statuses that hold a
        // box are looked at; a vanished box is detached at once (tokens revoked, its slot
        // freed), its leftovers go with the orphan sweep.
        if let Some(p) = &provider {
            for task in active.iter().filter(|t| {
                !t.box_torn_down
                    && t.agent_status.holds_box()
                    && t.agent_status != AgentStatus::Failed
            }) {
                let Some(box_id) = &task.box_id else { continue };
                let gone = match p.get(box_id).await {
                    Ok(None) => true,
                    Ok(Some(info)) => info.state == BoxState::Exited,
                    Err(e) => {
                        tracing::warn!(box_id, error = %e, "watchdog: box provider unreachable");
                        false
                    }
                };
                // The pass's snapshot may be stale: only the box the task still holds counts
                // (a person may have torn it down meanwhile, parking the task).
                let still_held = || async {
                    store
                        .get_task(&task.id)
                        .await
                        .map(|now| !now.box_torn_down && now.box_id.as_deref() == Some(box_id))
                        .unwrap_or(false)
                };
                if gone
                    && still_held().await
                    && self
                        .transition(
                            TransitionRequest::new(&task.id, AgentStatus::Failed, Actor::System)
                                .with_error("box vanished"),
                        )
                        .await
                        .is_ok()
                {
                    store.detach_box(&task.id, false).await?;
                    sum.vanished += 1;
                }
            }
        }

        // Re-read: the steps above changed statuses.
        let active = store.active_tasks().await?;
        for task in active.iter().filter(|t| !t.box_torn_down) {
            let idle_for = now - task.status_changed_at;
            let why = match task.agent_status {
                // 3. Idle boxes waiting on a human are parked.
                AgentStatus::SpecReady | AgentStatus::PrReady
                    if idle_for > t.idle_s as i64 * 1000 =>
                {
                    "idle"
                }
                // 4. Failed boxes go after the grace period.
                AgentStatus::Failed if idle_for > t.failed_grace_s as i64 * 1000 => "failed grace",
                _ => continue,
            };
            if store
                .enqueue(Self::teardown_job(&task.id, why))
                .await?
                .is_some()
            {
                if why == "idle" {
                    sum.parked += 1;
                } else {
                    sum.failed_teardowns += 1;
                }
            }
        }

        // 5. Teardown of finished tasks, retried until it succeeds.
        for task in store.finished_tasks_with_boxes().await? {
            if store
                .enqueue(Self::teardown_job(&task.id, "retry"))
                .await?
                .is_some()
            {
                sum.teardown_retries += 1;
            }
        }

        // 6. Orphans: boxes of this installation at the provider that no task holds (a shared
        // box host's other boxes, and boxes without the label, are never touched).
        if let Some(p) = &provider {
            let installation = store.installation_id().await?;
            let held: HashMap<String, String> = store
                .live_box_ids()
                .await?
                .into_iter()
                .map(|(task, b)| (b, task))
                .collect();
            let provisioning: HashSet<String> = active
                .iter()
                .filter(|t| t.agent_status == AgentStatus::Provisioning)
                .map(|t| t.id.clone())
                .collect();
            match p.list(Some((INSTALLATION_LABEL, &installation))).await {
                Ok(boxes) => {
                    for b in boxes {
                        let task = b.labels.get(TASK_LABEL).cloned().unwrap_or_default();
                        // A box still being attached to a provisioning task is not an orphan.
                        if held.contains_key(&b.id) || provisioning.contains(&task) {
                            continue;
                        }
                        match p.destroy(&b.id).await {
                            Ok(()) => sum.orphans += 1,
                            Err(e) => {
                                tracing::warn!(box_id = %b.id, error = %e, "watchdog: could not destroy orphan")
                            }
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "watchdog: cannot list boxes"),
            }
        }

        // 7. Drain the queue.
        self.request_drain().await?;
        for (name, n) in [
            ("timed_out", sum.timed_out),
            ("stalled", sum.stalled),
            ("redispatched", sum.redispatched),
            ("vanished", sum.vanished),
            ("parked", sum.parked),
            ("failed_teardowns", sum.failed_teardowns),
            ("teardown_retries", sum.teardown_retries),
            ("orphans", sum.orphans),
        ] {
            self.metrics
                .watchdog
                .get_or_create(&crate::metrics::WatchdogLabels {
                    action: name.into(),
                })
                .inc_by(n as u64);
        }
        self.metrics.watchdog_passes.inc();
        store.release_lease(LEASE, holder).await?;
        tracing::info!(
            timed_out = sum.timed_out,
            stalled = sum.stalled,
            redispatched = sum.redispatched,
            vanished = sum.vanished,
            parked = sum.parked,
            failed_teardowns = sum.failed_teardowns,
            teardown_retries = sum.teardown_retries,
            orphans = sum.orphans,
            "watchdog pass"
        );
        Ok(sum)
    }

    /// Runs passes every `watchdog_interval_s` (re-read every second, so a change applies at
    /// once) until `shutdown` resolves.
    pub async fn run_watchdog(
        self,
        holder: String,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        tokio::pin!(shutdown);
        loop {
            if let Err(e) = self.watchdog_pass(&holder).await {
                tracing::error!(error = %e, "watchdog pass failed");
            }
            let mut waited = 0u64;
            loop {
                tokio::select! {
                    _ = &mut shutdown => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
                waited += 1;
                let interval = self
                    .store
                    .settings()
                    .await
                    .map(|s| s.watchdog_interval_s)
                    .unwrap_or(60)
                    .max(1);
                if waited >= interval {
                    break;
                }
            }
        }
    }
}
