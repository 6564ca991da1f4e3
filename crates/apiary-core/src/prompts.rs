//! Prompts (DESIGN §4): per kind, the project's override, else the global default, else the
//! built-in default here; a blank or whitespace-only value falls through. A prompt is a
//! Jinja-syntax template over `task`, `project`, `spec`, `feedback`, `note`, `comments`,
//! `round` and `branch`.

use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;

use crate::settings::Prompts;

/// Which run a prompt drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PromptKind {
    Spec,
    Revise,
    Implement,
    Changes,
}

impl PromptKind {
    pub const ALL: [PromptKind; 4] = [
        PromptKind::Spec,
        PromptKind::Revise,
        PromptKind::Implement,
        PromptKind::Changes,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PromptKind::Spec => "spec",
            PromptKind::Revise => "revise",
            PromptKind::Implement => "implement",
            PromptKind::Changes => "changes",
        }
    }

    fn pick(self, p: &Prompts) -> &str {
        match self {
            PromptKind::Spec => &p.spec,
            PromptKind::Revise => &p.revise,
            PromptKind::Implement => &p.implement,
            PromptKind::Changes => &p.changes,
        }
    }
}

/// Where a resolved prompt came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PromptSource {
    Project,
    Global,
    BuiltIn,
}

/// The task as templates see it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TaskCtx {
    pub id: String,
    pub title: String,
    pub description: String,
}

/// The project as templates see it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ProjectCtx {
    pub name: String,
}

/// A review comment as templates see it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CommentCtx {
    pub author: String,
    pub body: String,
    pub path: Option<String>,
    pub line: Option<i64>,
}

/// Everything a prompt template may use.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PromptContext {
    pub task: TaskCtx,
    pub project: ProjectCtx,
    pub spec: String,
    pub feedback: String,
    pub note: String,
    pub comments: Vec<CommentCtx>,
    pub round: i64,
    pub branch: String,
}

const SPEC: &str = r#"You are a senior software engineer working in the git repository in the current directory.
Your job in this step is to write a specification, not code.

Task: {{ task.title }}
{% if task.description %}
Description:
{{ task.description }}
{% endif %}
Read the code that the task touches. Then write the specification in Markdown to the file
`.apiary/SPEC.md` (create the `.apiary` folder if needed) with these sections:

## Goal
What will be true when the task is done, in the user's terms.
## Approach
How you will do it, and why this way rather than the obvious alternatives.
## Files to change
Each file with one line on what changes.
## Tests
The tests you will add or change, and how to run them.
## Out of scope
What you will deliberately not do.

Keep it short and concrete: a reviewer must be able to approve or correct it in two minutes.
Do not change any other file and do not commit: the box commits for you.
"#;

const REVISE: &str = r#"You are a senior software engineer working in the git repository in the current directory.
A reviewer asked for changes to your specification.

Task: {{ task.title }}

Your current specification:
{{ spec }}

The reviewer's feedback:
{{ feedback }}

Rewrite `.apiary/SPEC.md` so that it addresses every point of the feedback, keeping the same
sections (Goal, Approach, Files to change, Tests, Out of scope). Do not change any other file
and do not commit.
"#;

const IMPLEMENT: &str = r#"You are a senior software engineer working in the git repository in the current directory,
on branch {{ branch }}.

Task: {{ task.title }}
{% if task.description %}
Description:
{{ task.description }}
{% endif %}
Implement this approved specification:
{{ spec }}
{% if note %}
The reviewer's note on approval: {{ note }}
{% endif %}
Rules:
- Change only what the specification needs; keep the project's style and conventions.
- Add or update tests where the project has them, and run them; fix what fails.
- Do not touch `.apiary/`. Do not commit or push: the box commits and opens the pull request.
- When you are done, reply with a short summary of what you changed and how you tested it.
"#;

const CHANGES: &str = r#"You are a senior software engineer working in the git repository in the current directory,
on branch {{ branch }}, which holds your pull request for:

Task: {{ task.title }}

The reviewer requested changes (round {{ round }}):
{% for c in comments %}- {% if c.path %}{{ c.path }}{% if c.line %}:{{ c.line }}{% endif %}: {% endif %}{{ c.body }} ({{ c.author }})
{% endfor %}
Address every comment. Keep the rest of the change as it is, run the tests, and do not commit
or push: the box does. Reply with a short summary of what you changed for each comment.
"#;

/// The built-in default of a kind: good prompts for a coding agent.
pub fn builtin(kind: PromptKind) -> &'static str {
    match kind {
        PromptKind::Spec => SPEC,
        PromptKind::Revise => REVISE,
        PromptKind::Implement => IMPLEMENT,
        PromptKind::Changes => CHANGES,
    }
}

/// The template that applies and where it came from.
pub fn resolve<'a>(
    kind: PromptKind,
    project: &'a Prompts,
    global: &'a Prompts,
) -> (&'a str, PromptSource) {
    let p = kind.pick(project);
    if !p.trim().is_empty() {
        return (p, PromptSource::Project);
    }
    let g = kind.pick(global);
    if !g.trim().is_empty() {
        return (g, PromptSource::Global);
    }
    (builtin(kind), PromptSource::BuiltIn)
}

fn env() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Lenient);
    // A template is user input: bound the work one render may do (loops included).
    env.set_fuel(Some(200_000));
    env.set_keep_trailing_newline(true);
    env
}

/// Checks that a template parses; the error names the line.
pub fn check_template(template: &str) -> Result<(), String> {
    if template.len() > 100_000 {
        return Err("a prompt is at most 100000 bytes".into());
    }
    env()
        .template_from_str(template)
        .map(|_| ())
        .map_err(|e| match e.line() {
            Some(line) => format!(
                "template error on line {line}: {}",
                e.detail().unwrap_or("syntax error")
            ),
            None => format!("template error: {e}"),
        })
}

/// Renders a template over the context.
pub fn render(template: &str, ctx: &PromptContext) -> Result<String, String> {
    let env = env();
    let t = env.template_from_str(template).map_err(|e| e.to_string())?;
    t.render(ctx).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> PromptContext {
        PromptContext {
            task: TaskCtx {
                id: "t1".into(),
                title: "Add a footer".into(),
                description: "With the year.".into(),
            },
            project: ProjectCtx {
                name: "site".into(),
            },
            spec: "# Spec".into(),
            comments: vec![CommentCtx {
                author: "Ann".into(),
                body: "Use <footer>".into(),
                path: Some("index.html".into()),
                line: Some(3),
            }],
            round: 2,
            branch: "apiary/t1-add-a-footer".into(),
            ..Default::default()
        }
    }

    #[test]
    fn project_beats_global_beats_builtin_and_blank_falls_through() {
        let project = Prompts {
            spec: "P {{ task.title }}".into(),
            implement: "   ".into(),
            ..Default::default()
        };
        let global = Prompts {
            implement: "G".into(),
            ..Default::default()
        };
        assert_eq!(
            resolve(PromptKind::Spec, &project, &global),
            ("P {{ task.title }}", PromptSource::Project)
        );
        assert_eq!(
            resolve(PromptKind::Implement, &project, &global),
            ("G", PromptSource::Global)
        );
        assert_eq!(
            resolve(PromptKind::Changes, &project, &global).1,
            PromptSource::BuiltIn
        );
    }

    #[test]
    fn builtins_render_the_task_and_the_comments() {
        for kind in PromptKind::ALL {
            check_template(builtin(kind)).unwrap();
        }
        let changes = render(builtin(PromptKind::Changes), &ctx()).unwrap();
        assert!(
            changes.contains("index.html:3: Use <footer> (Ann)"),
            "{changes}"
        );
        assert!(changes.contains("round 2"));
        let spec = render(builtin(PromptKind::Spec), &ctx()).unwrap();
        assert!(
            spec.contains("Task: Add a footer")
                && spec.contains("With the year.")
                && spec.contains(".apiary/SPEC.md")
        );
    }

    #[test]
    fn a_runaway_template_stops_instead_of_spinning() {
        let err = render(
            "{% for i in range(10000) %}{% for j in range(10000) %}x{% endfor %}{% endfor %}",
            &ctx(),
        )
        .unwrap_err();
        assert!(err.contains("fuel"), "{err}");
    }

    #[test]
    fn a_template_that_does_not_parse_names_its_line() {
        let err = check_template("line one\nline two {% bogus %}\nthree").unwrap_err();
        assert!(err.contains("line 2"), "{err}");
        assert!(check_template("{% for c in comments %}{{ c.body }}{% endfor %}").is_ok());
    }
}
