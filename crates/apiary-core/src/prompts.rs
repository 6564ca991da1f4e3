//! Prompts (DESIGN §4): per kind, the project's override, else the global default, else the
//! built-in default here; a blank or whitespace-only value falls through. A prompt is a
//! Jinja-syntax template over `task`, `project`, `spec`, `feedback`, `note`, `comments`,
//! `round` and `branch`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use minijinja::machinery::{tokenize, Token, WhitespaceConfig};
use minijinja::value::{Rest, Value, ValueKind};
use minijinja::{Environment, Error, ErrorKind, State, UndefinedBehavior};
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

/// Longest rendered prompt, in bytes (a spec is at most 200 KB; the rest is the task's text).
pub const MAX_RENDERED_BYTES: usize = 1024 * 1024;
/// Most bytes the filters of one render may produce, all calls together.
pub const MAX_FILTER_BYTES: usize = 8 * 1024 * 1024;
/// Largest width, count or padding a filter argument may ask for.
pub const MAX_FILTER_ARG: i64 = 100;

/// What the filters of one render have produced so far.
#[derive(Clone, Default)]
struct Budget(Arc<AtomicUsize>);

impl Budget {
    fn left(&self) -> usize {
        MAX_FILTER_BYTES.saturating_sub(self.0.load(Ordering::Relaxed))
    }

    fn over(&self) -> Error {
        Error::new(
            ErrorKind::InvalidOperation,
            format!("the template builds more than {MAX_FILTER_BYTES} bytes of text"),
        )
    }

    /// Charges a filter's result: its length for a string, a word per item for a sequence.
    fn charge(&self, v: &Value) -> Result<(), Error> {
        let cost = match v.as_str() {
            Some(s) => s.len(),
            None => v.len().unwrap_or(0).saturating_mul(16),
        };
        let total = self
            .0
            .fetch_add(cost, Ordering::Relaxed)
            .saturating_add(cost);
        if total > MAX_FILTER_BYTES {
            return Err(self.over());
        }
        Ok(())
    }
}

/// The most bytes a multiplying filter can produce from these arguments, worked out before it
/// runs (`None` for the others, whose output is a small multiple of their input).
fn estimate(name: &str, args: &[Value]) -> Option<usize> {
    let text = |v: &Value| v.as_str().map_or(0, str::len);
    let s = args.first()?;
    match name {
        "replace" => {
            let (old, new) = (args.get(1)?.as_str()?, args.get(2)?.as_str()?);
            let input = s.to_string();
            let hits = if old.is_empty() {
                input.chars().count() + 1
            } else {
                input.matches(old).count()
            };
            Some(input.len().saturating_add(hits.saturating_mul(new.len())))
        }
        "indent" => {
            let width = args.get(1).and_then(Value::as_i64).unwrap_or(4).max(0) as usize;
            let input = s.to_string();
            Some(input.len() + (input.lines().count() + 1).saturating_mul(width))
        }
        "join" => {
            let sep = args.get(1).map_or(0, text);
            let n = s.len()?;
            let items: usize = s.try_iter().ok()?.map(|v| v.to_string().len()).sum();
            Some(items.saturating_add(n.saturating_mul(sep)))
        }
        "format" => Some(args.iter().map(|v| v.to_string().len()).sum::<usize>() * 2 + 4096),
        _ => None,
    }
}

/// Refuses a numeric argument (or a printf width) past [`MAX_FILTER_ARG`] before the filter
/// allocates for it.
fn check_args(name: &str, args: &[Value]) -> Result<(), Error> {
    let too_big = |n: i64| n.unsigned_abs() > MAX_FILTER_ARG as u64;
    if matches!(name, "indent" | "batch" | "slice") {
        let mut numbers = Vec::new();
        for a in args.iter().skip(1) {
            if a.kind() == ValueKind::Map {
                // Keyword arguments arrive as one map.
                for k in a.try_iter().into_iter().flatten() {
                    numbers.extend(a.get_item(&k).ok());
                }
            } else {
                numbers.push(a.clone());
            }
        }
        if numbers
            .iter()
            .any(|v| v.is_number() && v.as_i64().is_none_or(too_big))
        {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                format!("{name}: numeric arguments must be at most {MAX_FILTER_ARG}"),
            ));
        }
    }
    if name == "format" {
        if let Some(f) = args.first().and_then(Value::as_str) {
            let mut specs = f.split('%').skip(1);
            let wide = specs.any(|spec| {
                let head: String = spec
                    .chars()
                    .take_while(|c| c.is_ascii_digit() || "-+ #0.".contains(*c))
                    .collect();
                head.split(|c: char| !c.is_ascii_digit())
                    .filter(|d| !d.is_empty())
                    .any(|d| d.len() > 4 || d.parse::<i64>().map_or(true, too_big))
            });
            if wide {
                return Err(Error::new(
                    ErrorKind::InvalidOperation,
                    format!("format: widths must be at most {MAX_FILTER_ARG}"),
                ));
            }
        }
    }
    Ok(())
}

/// The built-in filters, each to be put behind the argument check and the render's budget.
fn builtin_filters() -> Vec<(&'static str, Value)> {
    use minijinja::filters;
    vec![
        ("safe", Value::from_function(filters::safe)),
        ("escape", Value::from_function(filters::escape)),
        ("e", Value::from_function(filters::escape)),
        ("lower", Value::from_function(filters::lower)),
        ("upper", Value::from_function(filters::upper)),
        ("title", Value::from_function(filters::title)),
        ("capitalize", Value::from_function(filters::capitalize)),
        ("replace", Value::from_function(filters::replace)),
        ("length", Value::from_function(filters::length)),
        ("count", Value::from_function(filters::length)),
        ("dictsort", Value::from_function(filters::dictsort)),
        ("items", Value::from_function(filters::items)),
        ("reverse", Value::from_function(filters::reverse)),
        ("trim", Value::from_function(filters::trim)),
        ("join", Value::from_function(filters::join)),
        ("split", Value::from_function(filters::split)),
        ("lines", Value::from_function(filters::lines)),
        ("default", Value::from_function(filters::default)),
        ("d", Value::from_function(filters::default)),
        ("round", Value::from_function(filters::round)),
        ("abs", Value::from_function(filters::abs)),
        ("int", Value::from_function(filters::int)),
        ("float", Value::from_function(filters::float)),
        ("attr", Value::from_function(filters::attr)),
        ("first", Value::from_function(filters::first)),
        ("last", Value::from_function(filters::last)),
        ("min", Value::from_function(filters::min)),
        ("max", Value::from_function(filters::max)),
        ("sort", Value::from_function(filters::sort)),
        ("list", Value::from_function(filters::list)),
        ("string", Value::from_function(filters::string)),
        ("bool", Value::from_function(filters::bool)),
        ("batch", Value::from_function(filters::batch)),
        ("slice", Value::from_function(filters::slice)),
        ("sum", Value::from_function(filters::sum)),
        ("indent", Value::from_function(filters::indent)),
        ("select", Value::from_function(filters::select)),
        ("reject", Value::from_function(filters::reject)),
        ("selectattr", Value::from_function(filters::selectattr)),
        ("rejectattr", Value::from_function(filters::rejectattr)),
        ("map", Value::from_function(filters::map)),
        ("groupby", Value::from_function(filters::groupby)),
        ("unique", Value::from_function(filters::unique)),
        ("chain", Value::from_function(filters::chain)),
        ("zip", Value::from_function(filters::zip)),
        ("pprint", Value::from_function(filters::pprint)),
        ("format", Value::from_function(filters::format)),
    ]
}

fn env(budget: &Budget) -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Lenient);
    // A template is user input: bound the work one render may do (loops included).
    env.set_fuel(Some(200_000));
    env.set_keep_trailing_newline(true);
    // `debug()` prints every variable, the ones it printed before included.
    env.remove_global("debug");
    for (name, inner) in builtin_filters() {
        let budget = budget.clone();
        env.add_filter(name, move |state: &State, args: Rest<Value>| {
            check_args(name, &args)?;
            if estimate(name, &args).is_some_and(|n| n > budget.left()) {
                return Err(budget.over());
            }
            let out = inner.call(state, &args)?;
            budget.charge(&out)?;
            Ok(out)
        });
    }
    env
}

/// Why a template is refused before it runs: what can build text without bound (the string
/// operators; blocks whose output becomes a value and can be used twice).
fn check_constructs(template: &str) -> Result<(), String> {
    let tokens = tokenize(
        template,
        false,
        Default::default(),
        WhitespaceConfig::default(),
    );
    let mut after_block_start = false;
    let mut in_set = false;
    for tok in tokens {
        let Ok((tok, span)) = tok else {
            // A syntax error: the parser says it better.
            return Ok(());
        };
        let line = span.start_line;
        let refuse = |what: &str| {
            Err(format!(
                "template error on line {line}: {what} is not allowed in a prompt (it can build text without bound)"
            ))
        };
        match tok {
            Token::Tilde => return refuse("the ~ operator"),
            Token::Plus => return refuse("the + operator"),
            Token::Mul => return refuse("the * operator"),
            Token::Ident(kw @ ("macro" | "call" | "filter")) if after_block_start => {
                return refuse(&format!("{{% {kw} %}}"))
            }
            Token::Ident("recursive") => return refuse("a recursive loop"),
            Token::Ident("set") if after_block_start => in_set = true,
            Token::Assign => in_set = false,
            Token::BlockEnd if in_set => return refuse("a {% set %} block"),
            _ => {}
        }
        after_block_start = matches!(tok, Token::BlockStart);
        if matches!(tok, Token::BlockEnd) {
            in_set = false;
        }
    }
    Ok(())
}

/// A context with something in every field, so a check on save walks the template's branches.
fn sample_context() -> PromptContext {
    PromptContext {
        task: TaskCtx {
            id: "t1".into(),
            title: "A task".into(),
            description: "What it is about.".into(),
        },
        project: ProjectCtx {
            name: "project".into(),
        },
        spec: "# Spec".into(),
        feedback: "Feedback.".into(),
        note: "A note.".into(),
        comments: vec![CommentCtx {
            author: "Ann".into(),
            body: "A comment".into(),
            path: Some("src/lib.rs".into()),
            line: Some(1),
        }],
        round: 1,
        branch: "apiary/t1-a-task".into(),
    }
}

/// Checks a template before it is stored: it parses, uses nothing that can build text
/// without bound, and renders over a sample task within the limits. The error names the line.
pub fn check_template(template: &str) -> Result<(), String> {
    if template.len() > 100_000 {
        return Err("a prompt is at most 100000 bytes".into());
    }
    env(&Budget::default())
        .template_from_str(template)
        .map(|_| ())
        .map_err(|e| match e.line() {
            Some(line) => format!(
                "template error on line {line}: {}",
                e.detail().unwrap_or("syntax error")
            ),
            None => format!("template error: {e}"),
        })?;
    check_constructs(template)?;
    if template.trim().is_empty() {
        return Ok(());
    }
    render(template, &sample_context())
        .map(|_| ())
        .map_err(|e| format!("template error: {e}"))
}

/// A writer that refuses to grow past [`MAX_RENDERED_BYTES`].
struct Capped {
    out: Vec<u8>,
    over: bool,
}

impl std::io::Write for Capped {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.out.len() + buf.len() > MAX_RENDERED_BYTES {
            self.over = true;
            return Err(std::io::Error::other("prompt too long"));
        }
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Renders a template over the context, within the limits: at most [`MAX_RENDERED_BYTES`]
/// out, [`MAX_FILTER_BYTES`] built by filters, bounded filter arguments, a fuel limit. The
/// server's preview and the box render through here.
pub fn render(template: &str, ctx: &PromptContext) -> Result<String, String> {
    check_constructs(template)?;
    let env = env(&Budget::default());
    let t = env.template_from_str(template).map_err(|e| e.to_string())?;
    let mut out = Capped {
        out: Vec::new(),
        over: false,
    };
    let done = t.render_captured_to(ctx, &mut out).map(|_| ());
    match done {
        Ok(()) => String::from_utf8(out.out).map_err(|e| e.to_string()),
        Err(_) if out.over => Err(format!(
            "the rendered prompt is longer than {MAX_RENDERED_BYTES} bytes"
        )),
        Err(e) => Err(e.to_string()),
    }
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

    /// Templates that would allocate without bound: each is refused on save and fails to
    /// render with a message, instead of taking the process down.
    const HOSTILE: &[(&str, &str)] = &[
        (r#"{{ "" | indent(1000000000000) }}"#, "indent"),
        (r#"{{ "x" | indent(width=1000000000000) }}"#, "indent"),
        (r#"{{ [1] | batch(1000000000000) | list }}"#, "batch"),
        (r#"{{ "%1000000000000s" | format("x") }}"#, "format"),
        (
            r#"{% set ns = namespace(s="xx") %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}"#,
            "~",
        ),
        (
            r#"{% set a = "x" * 100000000 %}{% set b = a + a %}{{ b }}"#,
            "*",
        ),
        (
            r#"{% set ns = namespace(s="xxxxxxxx") %}{% for i in range(64) %}{% set ns.s = [ns.s, ns.s] | join %}{% endfor %}"#,
            "more than",
        ),
        (
            r#"{% set ns = namespace(s="ab") %}{% for i in range(64) %}{% set ns.s = ns.s | replace("a", "aa") | replace("b", "bb") %}{% endfor %}"#,
            "more than",
        ),
        (
            r#"{% set a %}xxxxxxxxxxxxxxxx{% endset %}{% set b %}{{ a }}{{ a }}{% endset %}"#,
            "set",
        ),
        (
            r#"{% macro m() %}{{ caller() }}{{ caller() }}{% endmacro %}"#,
            "macro",
        ),
        (
            r#"{% for i in range(30000) %}0123456789012345678901234567890123456789{% endfor %}"#,
            "longer than",
        ),
        (r#"{{ debug() }}"#, "debug"),
    ];

    #[test]
    fn templates_that_would_allocate_without_bound_are_refused() {
        for (template, says) in HOSTILE {
            let err = check_template(template).expect_err(template);
            assert!(err.contains(says), "{template}: {err}");
            let mut big = ctx();
            big.spec = "s".repeat(10_000);
            let err = render(template, &big).expect_err(template);
            assert!(!err.is_empty());
        }
        // Multiplying filters are measured before they run, over the real data.
        let mut big = ctx();
        big.spec = "s".repeat(200_000);
        check_template(r#"{{ spec | replace("s", spec) | replace("s", spec) }}"#).unwrap();
        for t in [
            r#"{{ spec | replace("s", spec) | replace("s", spec) }}"#,
            r#"{{ spec | replace("s", spec) }}"#,
            r#"{{ [spec, spec, spec, spec, spec, spec, spec, spec, spec, spec, spec, spec, spec, spec, spec, spec, spec, spec, spec, spec, spec, spec, spec, spec, spec, spec, spec, spec, spec, spec, spec, spec, spec, spec, spec, spec, spec, spec, spec, spec, spec, spec, spec] | join }}"#,
        ] {
            let err = render(t, &big).unwrap_err();
            assert!(err.contains("more than"), "{t}: {err}");
        }
        // Bounded uses still work.
        let ok = render(
            r#"{{ spec | indent(4) }}|{{ "%-8s|" | format("ab") }}{{ comments | map(attribute="body") | join(", ") }}"#,
            &ctx(),
        )
        .unwrap();
        assert_eq!(ok, "# Spec|ab      |Use <footer>");
        check_template("{% set n = round %}{% for c in comments %}{{ loop.index }} {{ c.body | upper }}{% endfor %}{{ n }}").unwrap();
    }

    #[test]
    fn a_template_that_does_not_parse_names_its_line() {
        let err = check_template("line one\nline two {% bogus %}\nthree").unwrap_err();
        assert!(err.contains("line 2"), "{err}");
        assert!(check_template("{% for c in comments %}{{ c.body }}{% endfor %}").is_ok());
    }
}
