//! What Apiary knows of the places a pull request lives: GitHub repository names, and the
//! checks a PR head ran (the project's own check command in the box, or GitHub's check runs),
//! turned into the fix round's comments.

use serde::{Deserialize, Serialize};

/// Most checks one report carries.
pub const MAX_CHECKS: usize = 20;
/// Longest log tail kept per check, in bytes (the end of the output is what says why).
pub const MAX_LOG_TAIL_BYTES: usize = 8 * 1024;
/// Longest check name and summary, in bytes.
const MAX_NAME_BYTES: usize = 200;
const MAX_SUMMARY_BYTES: usize = 4000;

/// One check of a PR head.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Check {
    /// The check command, or the check run's name.
    pub name: String,
    pub passed: bool,
    /// One line on the outcome (`exit code 2`, a check run's title and summary).
    #[serde(default)]
    pub summary: String,
    /// The end of the check's output.
    #[serde(default)]
    pub log_tail: String,
}

/// What the checks said about a PR head.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CheckReport {
    /// `command` (the project's check command, run in the box) or `github` (check runs).
    pub source: String,
    pub checks: Vec<Check>,
}

impl CheckReport {
    /// Whether every check passed.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.passed)
    }

    /// Checks a box's report: a known source, at most [`MAX_CHECKS`], each field bounded.
    /// Returns the field at fault.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.source != "command" && self.source != "github" {
            return Err(("checks.source", "must be command or github".into()));
        }
        if self.checks.is_empty() || self.checks.len() > MAX_CHECKS {
            return Err((
                "checks.checks",
                format!("must hold 1 to {MAX_CHECKS} checks"),
            ));
        }
        for c in &self.checks {
            if c.name.trim().is_empty() || c.name.len() > MAX_NAME_BYTES {
                return Err((
                    "checks.checks.name",
                    format!("must be 1 to {MAX_NAME_BYTES} bytes"),
                ));
            }
            if c.summary.len() > MAX_SUMMARY_BYTES {
                return Err((
                    "checks.checks.summary",
                    format!("must be at most {MAX_SUMMARY_BYTES} bytes"),
                ));
            }
            if c.log_tail.len() > MAX_LOG_TAIL_BYTES {
                return Err((
                    "checks.checks.log_tail",
                    format!("must be at most {MAX_LOG_TAIL_BYTES} bytes"),
                ));
            }
        }
        Ok(())
    }

    /// The fix round's review comments: one per failing check, with its name, summary and
    /// log tail, as the changes prompt shows review comments.
    pub fn fix_comments(&self) -> Vec<String> {
        self.checks
            .iter()
            .filter(|c| !c.passed)
            .map(|c| {
                let mut body = format!("Check `{}` failed.", c.name);
                if !c.summary.trim().is_empty() {
                    body.push_str(&format!("\n\n{}", c.summary.trim()));
                }
                if !c.log_tail.trim().is_empty() {
                    body.push_str(&format!(
                        "\n\nEnd of its log:\n```\n{}\n```",
                        c.log_tail.trim_end()
                    ));
                }
                body
            })
            .collect()
    }
}

/// The last `max` bytes of `text`, cut at a character boundary and then at a line start.
pub fn tail(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    let cut = &text[start..];
    match cut.find('\n') {
        Some(i) if i + 1 < cut.len() => &cut[i + 1..],
        _ => cut,
    }
}

/// `owner` and `repo` of a GitHub repository URL (`https://github.com/o/r(.git)`,
/// `git@github.com:o/r.git`, `ssh://git@github.com/o/r`).
pub fn github_repo(url: &str) -> Option<(String, String)> {
    let url = url.trim().trim_end_matches('/');
    let url = url.strip_suffix(".git").unwrap_or(url);
    let mut parts = url.rsplit(['/', ':']);
    let repo = parts.next().filter(|s| !s.is_empty())?;
    let owner = parts.next().filter(|s| !s.is_empty() && !s.contains('@'))?;
    Some((owner.to_string(), repo.to_string()))
}

/// The number of a GitHub pull request from its URL (`…/pull/7`).
pub fn pr_number(url: &str) -> Option<u64> {
    let mut parts = url.trim_end_matches('/').rsplit('/');
    let n = parts.next()?.parse().ok()?;
    (parts.next()? == "pull").then_some(n)
}

/// Whether `text` mentions `@handle` as a whole word (case-insensitive, as GitHub does).
pub fn mentions(text: &str, handle: &str) -> bool {
    let want = format!("@{}", handle.to_ascii_lowercase());
    let lower = text.to_ascii_lowercase();
    lower.match_indices(&want).any(|(i, m)| {
        let before = lower[..i].chars().next_back();
        let after = lower[i + m.len()..].chars().next();
        !before.is_some_and(|c| c.is_alphanumeric() || c == '-' || c == '/')
            && !after.is_some_and(|c| c.is_alphanumeric() || c == '-' || c == '_')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_and_repo_come_from_any_github_url() {
        let want = Some(("acme".to_string(), "site".to_string()));
        for url in [
            "https://github.com/acme/site.git",
            "https://github.com/acme/site",
            "https://x-access-token:t@github.com/acme/site/",
            "git@github.com:acme/site.git",
            "ssh://git@github.com/acme/site",
        ] {
            assert_eq!(github_repo(url), want, "{url}");
        }
        assert_eq!(github_repo("site"), None);
        assert_eq!(github_repo("git@github.com:site"), None);
    }

    #[test]
    fn pr_numbers_and_mentions() {
        assert_eq!(pr_number("https://github.com/a/b/pull/17"), Some(17));
        assert_eq!(pr_number("https://github.com/a/b/issues/17"), None);
        assert_eq!(pr_number("http://apiary/tasks/t/review"), None);
        assert!(mentions("@apiary please fix the test", "apiary"));
        assert!(mentions("thanks, @Apiary.", "apiary"));
        assert!(!mentions("@apiary-bot fix", "apiary"));
        assert!(!mentions("mail me at me@apiary.dev", "apiary"));
        assert!(!mentions("no mention here", "apiary"));
    }

    #[test]
    fn a_failing_report_becomes_one_comment_per_failing_check() {
        let r = CheckReport {
            source: "command".into(),
            checks: vec![
                Check {
                    name: "make test".into(),
                    passed: false,
                    summary: "exit code 2".into(),
                    log_tail: "FAIL: test_add\n".into(),
                },
                Check {
                    name: "lint".into(),
                    passed: true,
                    summary: String::new(),
                    log_tail: String::new(),
                },
            ],
        };
        assert!(!r.passed());
        assert!(r.validate().is_ok());
        assert_eq!(
            r.fix_comments(),
            vec!["Check `make test` failed.\n\nexit code 2\n\nEnd of its log:\n```\nFAIL: test_add\n```"]
        );
        let mut big = r.clone();
        big.checks[0].log_tail = "x".repeat(MAX_LOG_TAIL_BYTES + 1);
        assert_eq!(big.validate().unwrap_err().0, "checks.checks.log_tail");
        let mut odd = r;
        odd.source = "jenkins".into();
        assert_eq!(odd.validate().unwrap_err().0, "checks.source");
    }

    #[test]
    fn a_tail_starts_at_a_line_and_a_character() {
        assert_eq!(tail("short", 10), "short");
        assert_eq!(tail("line one\nline two\nend\n", 12), "end\n");
        let t = tail("ééééé\nabc", 6);
        assert_eq!(t, "abc");
    }
}
