//! The prompt of one run: the template the server resolved for the kind (project override or
//! global default), else the built-in default from `apiary_core::prompts` (the same text the
//! UI shows as "built-in"), rendered over the task view and what the control request brought.

use anyhow::{anyhow, Result};
use apiary_core::prompts::{self, CommentCtx, ProjectCtx, PromptContext, PromptKind, TaskCtx};
use serde_json::Value;

/// What a control request brought; it wins over what the task view says.
#[derive(Debug, Clone, Default)]
pub struct Input {
    pub note: Option<String>,
    pub feedback: Option<String>,
    pub comments: Vec<CommentCtx>,
    /// A fresh GitHub token for this round (a GitHub App's installation tokens live an hour;
    /// the box's own may have expired).
    pub github_token: Option<String>,
}

/// The template for `kind`: the server's when it sent a non-blank one, else the built-in.
pub fn template(view: &Value, kind: PromptKind) -> &str {
    view["prompts"][kind.as_str()]
        .as_str()
        .filter(|t| !t.trim().is_empty())
        .unwrap_or(prompts::builtin(kind))
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or("").to_string()
}

/// A review comment from its JSON (the task view's or a control request's).
pub fn comment(c: &Value) -> CommentCtx {
    CommentCtx {
        author: text(&c["author"]),
        body: text(&c["body"]),
        path: c["path"].as_str().map(str::to_string),
        line: c["line"].as_i64(),
    }
}

/// What templates see: the task view (`GET /api/v1/agent/tasks/{id}`) with the request's input.
pub fn context(view: &Value, input: &Input, task_id: &str, branch: &str) -> PromptContext {
    let comments = if input.comments.is_empty() {
        view["review_comments"]
            .as_array()
            .map(|a| a.iter().map(comment).collect())
            .unwrap_or_default()
    } else {
        input.comments.clone()
    };
    PromptContext {
        task: TaskCtx {
            id: view["task"]["id"].as_str().unwrap_or(task_id).to_string(),
            title: text(&view["task"]["title"]),
            description: text(&view["task"]["description"]),
        },
        project: ProjectCtx {
            name: text(&view["project"]["name"]),
        },
        spec: text(&view["spec"]),
        feedback: input
            .feedback
            .clone()
            .unwrap_or_else(|| text(&view["feedback"])),
        note: input.note.clone().unwrap_or_else(|| text(&view["note"])),
        comments,
        round: view["round"]
            .as_i64()
            .or_else(|| view["task"]["agent"]["round"].as_i64())
            .unwrap_or(0),
        branch: branch.to_string(),
    }
}

/// Renders the prompt of `kind`; a template that does not render is an error naming the kind.
pub fn render(view: &Value, kind: PromptKind, ctx: &PromptContext) -> Result<String> {
    prompts::render(template(view, kind), ctx)
        .map_err(|e| anyhow!("the {} prompt does not render: {e}", kind.as_str()))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn view(prompts: Value) -> Value {
        json!({
            "task": {"id": "t7", "title": "Add a footer", "description": "With the year.",
                     "agent": {"status": "pr_ready", "round": 2}},
            "project": {"name": "site", "agent": {"base_branch": "main"}},
            "prompts": prompts,
            "spec": "## Goal\nA footer.",
            "feedback": null,
            "note": "keep it small",
            "review_comments": [{"author": "Ann", "body": "Use <footer>", "path": "index.html", "line": 3}],
            "round": 2
        })
    }

    #[test]
    fn defaults_render_the_task_spec_note_and_comments() {
        let v = view(json!({}));
        let ctx = context(&v, &Input::default(), "t7", "apiary/t7-add-a-footer");
        let spec = render(&v, PromptKind::Spec, &ctx).unwrap();
        for want in [
            "Add a footer",
            "With the year.",
            ".apiary/SPEC.md",
            "## Goal",
            "Out of scope",
        ] {
            assert!(spec.contains(want), "spec prompt lacks {want:?}:\n{spec}");
        }
        assert!(spec.contains("do not commit"), "{spec}");
        let implement = render(&v, PromptKind::Implement, &ctx).unwrap();
        for want in [
            "A footer.",
            "keep it small",
            "apiary/t7-add-a-footer",
            "tests",
        ] {
            assert!(
                implement.contains(want),
                "implement prompt lacks {want:?}:\n{implement}"
            );
        }
        let changes = render(&v, PromptKind::Changes, &ctx).unwrap();
        assert!(
            changes.contains("index.html:3: Use <footer> (Ann)"),
            "{changes}"
        );
        assert!(changes.contains("round 2"), "{changes}");
    }

    #[test]
    fn the_request_wins_over_the_view() {
        let v = view(json!({}));
        let input = Input {
            feedback: Some("shorter, please".into()),
            comments: vec![CommentCtx {
                author: "Bo".into(),
                body: "rename it".into(),
                path: None,
                line: None,
            }],
            ..Default::default()
        };
        let ctx = context(&v, &input, "t7", "b");
        let revise = render(&v, PromptKind::Revise, &ctx).unwrap();
        assert!(
            revise.contains("shorter, please") && revise.contains("A footer."),
            "{revise}"
        );
        let changes = render(&v, PromptKind::Changes, &ctx).unwrap();
        assert!(changes.contains("rename it (Bo)") && !changes.contains("Use <footer>"));
    }

    #[test]
    fn a_custom_template_is_used_and_a_blank_one_falls_through() {
        let v = view(json!({
            "implement": "Do {{ task.title }} on {{ branch }} in {{ project.name }}{% for c in comments %}; {{ c.body }}{% endfor %}",
            "spec": "   "
        }));
        let ctx = context(&v, &Input::default(), "t7", "apiary/x");
        assert_eq!(
            render(&v, PromptKind::Implement, &ctx).unwrap(),
            "Do Add a footer on apiary/x in site; Use <footer>"
        );
        assert_eq!(
            template(&v, PromptKind::Spec),
            prompts::builtin(PromptKind::Spec)
        );
    }

    #[test]
    fn a_broken_template_names_its_kind() {
        let v = view(json!({"changes": "{% for c in comments %}{{ c.body }}"}));
        let ctx = context(&v, &Input::default(), "t7", "b");
        let err = render(&v, PromptKind::Changes, &ctx)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("the changes prompt does not render"),
            "{err}"
        );
    }
}
