//! Automatic fix rounds: when a PR's checks fail (GitHub's check runs, or the project's check
//! command in the box), the failures go back to the box as a changes round, at most
//! `ci_fix_rounds` times per attempt; then people are told and the task waits at `pr_ready`.

use apiary_core::forge::CheckReport;
use apiary_core::AgentStatus;
use apiary_store::{Actor, NewReviewComment, StoreResult, TaskWrites, TransitionRequest};

use crate::Orchestrator;

/// What a failing report led to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FixOutcome {
    /// A fix round started (its number, 1-based).
    Round(i64),
    /// The rounds are spent: people were told, the task waits for a human.
    GaveUp,
    /// Nothing to do: the checks passed, the task is not waiting at `pr_ready`, or the
    /// rounds were spent and people told already.
    Nothing,
}

/// Starts a fix round for a failing `report` on a task at `pr_ready`, or ends the rounds.
pub async fn checks_failed(
    orch: &Orchestrator,
    task_id: &str,
    report: &CheckReport,
) -> StoreResult<FixOutcome> {
    if report.passed() {
        return Ok(FixOutcome::Nothing);
    }
    let task = orch.store.get_task(task_id).await?;
    if task.agent_status != AgentStatus::PrReady {
        return Ok(FixOutcome::Nothing);
    }
    let limit = i64::from(orch.store.settings().await?.ci_fix_rounds);
    let json = serde_json::to_string(report).unwrap_or_default();
    let failing: Vec<&str> = report
        .checks
        .iter()
        .filter(|c| !c.passed)
        .map(|c| c.name.as_str())
        .collect();
    if task.fix_rounds < limit {
        let n = task.fix_rounds + 1;
        let comments = report
            .fix_comments()
            .into_iter()
            .map(|body| NewReviewComment {
                author_id: None,
                author_name: Some(match report.source.as_str() {
                    "github" => "GitHub checks".to_string(),
                    _ => "Check command".to_string(),
                }),
                body,
                path: None,
                line: None,
            })
            .collect();
        let writes = TaskWrites {
            review_comments: comments,
            fix_round: true,
            checks: Some(json),
            ..Default::default()
        };
        let req = TransitionRequest::new(task_id, AgentStatus::ChangesRequested, Actor::System)
            .with_writes(writes)
            .with_message(format!(
                "fix round {n} of {limit}: {} failed",
                failing.join(", ")
            ));
        let outcome = orch.transition(req).await?;
        return Ok(if outcome.changed {
            FixOutcome::Round(n)
        } else {
            FixOutcome::Nothing
        });
    }
    let error = format!(
        "checks still failing after {limit} fix round{}: {}",
        if limit == 1 { "" } else { "s" },
        failing.join(", ")
    );
    if let Some(outcome) = orch.store.checks_gave_up(task_id, &error, &json).await? {
        orch.publish(&outcome);
        return Ok(FixOutcome::GaveUp);
    }
    Ok(FixOutcome::Nothing)
}
