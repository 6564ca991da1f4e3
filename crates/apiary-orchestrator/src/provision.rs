//! Queue drain and provisioning: `queued` → `provisioning` under the cap, then a box with
//! fresh tokens and the boot env of DESIGN §4. Any failure ends the task `failed` with the
//! error kept; a task cancelled while its box was being made gets that box destroyed.

use std::collections::BTreeMap;

use apiary_boxes::{CreateBox, INSTALLATION_LABEL, TASK_LABEL};
use apiary_core::boot::{boot_env, branch_name, egress_allow, BootInput};
use apiary_core::AgentStatus;
use apiary_store::{Actor, BoxAddress, Job, JobFailure, StoreError, TransitionRequest};
use async_trait::async_trait;

use crate::worker::JobHandler;
use crate::Orchestrator;

fn retry(e: StoreError) -> JobFailure {
    JobFailure::Retryable(e.to_string())
}

/// Provisions the oldest queued tasks while boxes are free (nothing while orchestration is off).
pub struct DrainQueue;

#[async_trait]
impl JobHandler for DrainQueue {
    async fn run(&self, orch: &Orchestrator, _job: &Job) -> Result<(), JobFailure> {
        let settings = orch.store.settings().await.map_err(retry)?;
        if !settings.agent_orchestration_enabled {
            tracing::info!("queue drain: orchestration is off, nothing provisioned");
            return Ok(());
        }
        let moved = orch
            .store
            .drain_queue(settings.max_concurrent_boxes as i64)
            .await
            .map_err(retry)?;
        for outcome in &moved {
            orch.publish(outcome);
        }
        Ok(())
    }
}

/// Creates the box of a task in `provisioning`.
pub struct ProvisionBox;

impl ProvisionBox {
    async fn fail(orch: &Orchestrator, task_id: &str, error: String) -> Result<(), JobFailure> {
        tracing::warn!(task = task_id, %error, "provisioning failed");
        orch.transition(
            TransitionRequest::new(task_id, AgentStatus::Failed, Actor::System)
                .with_error(format!("provisioning failed: {error}")),
        )
        .await
        .map_err(retry)?;
        Ok(())
    }
}

/// Makes a box for a task: fresh tokens, the boot env, the provider's create, the address
/// recorded. Shared by provisioning and by resuming a parked task. On error the task's tokens
/// are revoked again and the message says what failed.
pub async fn start_box(
    orch: &Orchestrator,
    task_id: &str,
) -> Result<apiary_boxes::BoxInfo, String> {
    let store = &orch.store;
    let task = store.get_task(task_id).await.map_err(|e| e.to_string())?;
    let project = store
        .get_project(&task.project_id)
        .await
        .map_err(|e| e.to_string())?;
    let settings = store.settings().await.map_err(|e| e.to_string())?;
    let provider = orch.provider().await?;
    // A task still holding an old box (a retry after failure) gets a fresh one.
    if let (Some(old), false) = (&task.box_id, task.box_torn_down) {
        provider
            .destroy(old)
            .await
            .map_err(|e| format!("could not remove the previous box: {e}"))?;
        store
            .detach_box(task_id, false)
            .await
            .map_err(|e| e.to_string())?;
    }
    if project.agent.repo_url.trim().is_empty() {
        return Err("the project has no repository URL".into());
    }
    // A repository on this machine refuses a box's pushes to any branch but its own.
    let repo_path = std::path::Path::new(&project.agent.repo_url);
    if project.agent.forge == "local" && repo_path.is_absolute() && repo_path.exists() {
        if let Err(e) = crate::forge::protect_local_repo(repo_path) {
            tracing::warn!(repo = %project.agent.repo_url, error = %e, "could not install the pre-receive hook");
        }
    }
    let tokens = store
        .mint_box_tokens(task_id)
        .await
        .map_err(|e| e.to_string())?;
    // Whatever fails from here gives the slot back (the minted tokens die with it).
    match boot_box(orch, &task, &project, &settings, provider.as_ref(), tokens).await {
        Ok(info) => Ok(info),
        Err(e) => {
            let _ = store.detach_box(task_id, false).await;
            Err(e)
        }
    }
}

/// Makes the box of a task whose tokens were just minted, and records its address.
async fn boot_box(
    orch: &Orchestrator,
    task: &apiary_store::Task,
    project: &apiary_store::Project,
    settings: &apiary_core::Settings,
    provider: &dyn apiary_boxes::BoxProvider,
    tokens: apiary_store::BoxTokens,
) -> Result<apiary_boxes::BoxInfo, String> {
    let store = &orch.store;
    let task_id = task.id.as_str();
    // Minting recorded the branch (a box may submit only this one).
    let branch = store
        .get_task(task_id)
        .await
        .map_err(|e| e.to_string())?
        .branch
        .unwrap_or_else(|| branch_name(&task.id, &task.title));
    let apiary_url = orch.callback_url().await.map_err(|e| e.to_string())?;
    let own = store
        .project_gateway(&project.id)
        .await
        .map_err(|e| e.to_string())?;
    let model = if own.model.trim().is_empty() {
        settings.gateway.model(&project.agent.preset)
    } else {
        own.model.trim().to_string()
    };
    let mut agent_env = settings.gateway.agent_env.clone();
    agent_env.extend(own.agent_env);
    let input = BootInput {
        gateway_token: tokens.gateway_token,
        model,
        agent_env,
        egress_allow: egress_allow(&settings.egress_allow, &apiary_url, &project.agent.repo_url),
        apiary_url,
        task_id: task.id.clone(),
        callback_token: tokens.callback_token,
        control_token: tokens.control_token,
        repo_url: project.agent.repo_url.clone(),
        base_branch: project.agent.base_branch.clone(),
        branch,
        preset: project.agent.preset.clone(),
        command: project.agent.command.clone(),
        forge: project.agent.forge.clone(),
        github: if project.agent.forge == "github" {
            // The project's token, else an installation token of the GitHub App minted for
            // this box (scoped to the repository).
            let token = crate::github::project_token(orch, project, crate::github::TokenFor::Box)
                .await
                .map_err(|e| e.to_string())?
                .ok_or("the project's forge is github but it has no GitHub token and no GitHub App is set")?;
            Some((settings.github_api_base.clone(), token))
        } else {
            None
        },
    };
    let template = if project.agent.template.trim().is_empty() {
        settings.default_template.clone()
    } else {
        project.agent.template.clone()
    };
    let req = CreateBox {
        template,
        env: boot_env(&input, &settings.timeouts),
        limits: Some(settings.box_limits),
        labels: BTreeMap::from([
            (TASK_LABEL.to_string(), task.id.clone()),
            (
                INSTALLATION_LABEL.to_string(),
                store.installation_id().await.map_err(|e| e.to_string())?,
            ),
        ]),
    };
    let info = provider.create(req).await.map_err(|e| e.to_string())?;
    // The code view: the box's workspace through Apiary, unless the provider offers its own.
    let code_url = match &info.code_url {
        Some(url) => Some(url.clone()),
        None => Some(format!(
            "{}/tasks/{task_id}/code",
            orch.public_url().await.map_err(|e| e.to_string())?
        )),
    };
    // The site preview through Apiary, when the project runs one.
    let site_url = match (
        &info.site_url,
        project.agent.preview_command.trim().is_empty(),
    ) {
        (Some(url), _) => Some(url.clone()),
        (None, true) => None,
        (None, false) => Some(format!(
            "{}/tasks/{task_id}/site/",
            orch.public_url().await.map_err(|e| e.to_string())?
        )),
    };
    store
        .set_box_address(
            task_id,
            &BoxAddress {
                box_id: info.id.clone(),
                control_url: info.control_url.clone(),
                code_url,
                site_url,
            },
        )
        .await
        .map_err(|e| e.to_string())?;
    Ok(info)
}

#[async_trait]
impl JobHandler for ProvisionBox {
    async fn run(&self, orch: &Orchestrator, job: &Job) -> Result<(), JobFailure> {
        let store = &orch.store;
        let task_id = job
            .task_id
            .clone()
            .ok_or_else(|| JobFailure::Fatal("no task".into()))?;
        let task = store.get_task(&task_id).await.map_err(retry)?;
        if task.agent_status != AgentStatus::Provisioning {
            return Ok(());
        }
        let info = match start_box(orch, &task_id).await {
            Ok(info) => info,
            Err(e) => return Self::fail(orch, &task_id, e).await,
        };
        // Cancelled (or failed) while the box was being made: that box must not live on.
        let now = store.get_task(&task_id).await.map_err(retry)?;
        if now.agent_status.is_terminal() || now.agent_status == AgentStatus::None {
            tracing::info!(task = %task_id, box_id = %info.id, "task ended during provisioning; destroying its box");
            let provider = orch.provider().await.map_err(JobFailure::Retryable)?;
            provider
                .destroy(&info.id)
                .await
                .map_err(|e| JobFailure::Retryable(e.to_string()))?;
            store.detach_box(&task_id, false).await.map_err(retry)?;
            orch.request_drain().await.map_err(retry)?;
        }
        Ok(())
    }
}
