//! `serve --demo`: on first start, a demo project whose repository is a small local git
//! repository in the data dir and whose agent is a bundled script, with orchestration on, so
//! a newcomer can watch spec → PR → merge without any coding-agent CLI installed.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};
use apiary_core::Role;
use apiary_store::{NewProject, ProjectPatch, Store};

const AGENT: &str = include_str!("../assets/demo-agent.sh");

/// The demo's seeded tasks: small, medium, large.
const DEMO_TASKS: [(&str, &str); 3] = [
    (
        "Add a greeting to the README",
        "One line under the title that welcomes new contributors.",
    ),
    (
        "Write contributing notes",
        "A CONTRIBUTING.md that says how to run the tests, how to name branches and how \
         reviews work here.",
    ),
    (
        "Document the release process",
        "Describe, step by step, how a release is cut: version bump, changelog, tag, the \
         checks that must pass, and who signs off. Include a checklist reviewers can copy \
         into the release pull request.",
    ),
];

fn git(dir: &Path, args: &[&str]) -> Result<()> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args([
            "-c",
            "user.name=Apiary Demo",
            "-c",
            "user.email=demo@apiary.local",
        ])
        .args(args)
        .output()
        .context("running git (is it installed?)")?;
    if !out.status.success() {
        bail!(
            "git {:?} failed: {}",
            args,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// Creates the demo repository, script and project once; later starts change nothing.
pub async fn ensure_demo(store: &Store, data_dir: &Path) -> Result<()> {
    let admin = store
        .list_users()
        .await?
        .into_iter()
        .find(|u| u.role == Role::Admin)
        .context("no admin to own the demo project")?;
    if store
        .list_projects_for(&admin)
        .await?
        .iter()
        .any(|p| p.name == "Demo")
    {
        return Ok(());
    }
    let root = std::fs::canonicalize(data_dir)?.join("demo");
    let repo = root.join("repo.git");
    let seed = root.join("seed");
    std::fs::create_dir_all(&seed)?;
    git(
        &root,
        &["init", "-q", "--bare", "-b", "main", repo.to_str().unwrap()],
    )?;
    git(&seed, &["init", "-q", "-b", "main"])?;
    std::fs::write(
        seed.join("README.md"),
        "# Demo\n\nA repository for Apiary's demo agent.\n",
    )?;
    std::fs::write(seed.join("NOTES.md"), "# Notes\n\n")?;
    git(&seed, &["add", "-A"])?;
    git(&seed, &["commit", "-q", "-m", "Initial commit"])?;
    git(&seed, &["push", "-q", repo.to_str().unwrap(), "main"])?;
    std::fs::remove_dir_all(&seed)?;
    let script = root.join("demo-agent.sh");
    std::fs::write(&script, AGENT)?;
    let project = store
        .create_project(
            NewProject {
                name: "Demo".into(),
                description:
                    "Hand a task to the agent and watch it write a spec, open a PR and merge."
                        .into(),
            },
            &admin,
        )
        .await?;
    store
        .update_project(
            &project.id,
            ProjectPatch {
                enabled: Some(true),
                repo_url: Some(repo.display().to_string()),
                preset: Some("script".into()),
                command: Some(format!("sh {}", script.display())),
                forge: Some("local".into()),
                prompt_spec: Some("Title: {{ task.title }}\n\n{{ task.description }}\n".into()),
                prompt_revise: Some("Title: {{ task.title }}\n\nFeedback: {{ feedback }}\n".into()),
                prompt_implement: Some("Title: {{ task.title }}\n\n{{ spec }}\n".into()),
                prompt_changes: Some(
                    "Title: {{ task.title }}\n\nReview comments:\n{% for c in comments %}- {{ c.body }}\n{% endfor %}".into(),
                ),
                ..Default::default()
            },
        )
        .await?;
    let mut settings = store.settings().await?;
    settings.agent_orchestration_enabled = true;
    store.save_settings(&settings).await?;
    // Three tasks of different sizes; the first is handed over at once, so a newcomer sees a
    // box at work within seconds of signing in.
    for (i, (title, description)) in DEMO_TASKS.iter().enumerate() {
        let (task, _) = store
            .create_task(
                &project.id,
                apiary_store::NewTask {
                    title: title.to_string(),
                    description: description.to_string(),
                    status: None,
                    assignee_id: None,
                },
                &admin,
            )
            .await?;
        if i == 0 {
            store.hand_off(&task.id, &admin).await?;
        }
    }
    println!("Demo project ready: repository {}", repo.display());
    Ok(())
}
