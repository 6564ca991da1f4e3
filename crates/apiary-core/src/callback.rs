//! What a box sends to the callback API, and the checks every body passes before anything is
//! stored. Kept here, free of HTTP and storage, so the fuzzer reaches exactly the code the
//! server runs on a box's input.

use serde::Deserialize;

use crate::AgentStatus;

/// Most lines in one log batch.
pub const MAX_LOG_LINES: usize = 1000;
/// Longest log line, in bytes.
pub const MAX_LOG_LINE_BYTES: usize = 16 * 1024;
/// Longest status message and error text, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 4000;
/// Longest spec, in bytes.
pub const MAX_SPEC_BYTES: usize = 200_000;

/// Why a body was refused: the field at fault, and whether it was too large (413) rather
/// than wrong (400).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyError {
    pub field: &'static str,
    pub too_large: bool,
    pub message: String,
}

impl BodyError {
    fn bad(field: &'static str, message: impl Into<String>) -> Self {
        BodyError {
            field,
            too_large: false,
            message: message.into(),
        }
    }

    fn large(field: &'static str, message: impl Into<String>) -> Self {
        BodyError {
            field,
            too_large: true,
            message: message.into(),
        }
    }
}

/// `status` body.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct StatusIn {
    pub status: String,
    pub message: Option<String>,
}

impl StatusIn {
    /// The status asked for and the message to record.
    pub fn validate(self) -> Result<(AgentStatus, Option<String>), BodyError> {
        let to: AgentStatus = self
            .status
            .parse()
            .map_err(|_| BodyError::bad("status", format!("unknown status {:?}", self.status)))?;
        if self
            .message
            .as_ref()
            .is_some_and(|m| m.len() > MAX_MESSAGE_BYTES)
        {
            return Err(BodyError::bad(
                "message",
                format!("message must be at most {MAX_MESSAGE_BYTES} bytes"),
            ));
        }
        Ok((to, self.message))
    }
}

/// `spec` body.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SpecIn {
    pub spec_markdown: String,
}

impl SpecIn {
    /// The spec to store.
    pub fn validate(self) -> Result<String, BodyError> {
        if self.spec_markdown.trim().is_empty() || self.spec_markdown.len() > MAX_SPEC_BYTES {
            return Err(BodyError::bad(
                "spec_markdown",
                format!("spec_markdown must be 1 to {MAX_SPEC_BYTES} bytes"),
            ));
        }
        Ok(self.spec_markdown)
    }
}

/// `pr` body.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PrIn {
    pub pr_url: String,
    pub branch: String,
    pub head_sha: Option<String>,
    /// What the project's check command said about this head, when it has one.
    #[serde(default)]
    pub checks: Option<crate::forge::CheckReport>,
}

/// A checked `pr` body.
#[derive(Debug, PartialEq, Eq)]
pub struct PullRequest {
    pub pr_url: String,
    pub branch: String,
    /// `head <sha>` for the audit trail, when the box sent one.
    pub message: Option<String>,
    pub checks: Option<crate::forge::CheckReport>,
}

/// Whether `url` is an absolute `http://` or `https://` URL with a host and nothing a browser
/// could read another way (no whitespace, no control characters, no backslashes): a PR link
/// is shown to people, so `javascript:` and friends never get stored.
pub fn is_http_url(url: &str) -> bool {
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    let rest = if lower.starts_with("https://") {
        &url[8..]
    } else if lower.starts_with("http://") {
        &url[7..]
    } else {
        return false;
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = host.rsplit('@').next().unwrap_or("");
    !host.is_empty()
        && !host.starts_with(':')
        && !url
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '\\')
}

impl PrIn {
    /// Checks the body on its own; [`PullRequest::check_branch`] then holds the branch to the
    /// task's own.
    pub fn validate(self) -> Result<PullRequest, BodyError> {
        if self.pr_url.len() > 2000 || !is_http_url(&self.pr_url) {
            return Err(BodyError::bad(
                "pr_url",
                "pr_url must be an http:// or https:// URL of at most 2000 bytes",
            ));
        }
        if !self.branch.starts_with("apiary/") || self.branch.len() > 250 {
            return Err(BodyError::bad(
                "branch",
                "branch must be the box's own apiary/… branch",
            ));
        }
        if let Some(c) = &self.checks {
            if let Err((field, message)) = c.validate() {
                return Err(BodyError::bad(field, format!("{field}: {message}")));
            }
        }
        Ok(PullRequest {
            checks: self.checks,
            message: self
                .head_sha
                .map(|s| format!("head {}", s.chars().take(64).collect::<String>())),
            pr_url: self.pr_url,
            branch: self.branch,
        })
    }
}

impl PullRequest {
    /// Refuses a branch other than `own`, the task's branch: a box cannot point its task at
    /// another task's work.
    pub fn check_branch(&self, own: &str) -> Result<(), BodyError> {
        if self.branch != own {
            return Err(BodyError::bad(
                "branch",
                format!("branch must be this task's own branch {own:?}"),
            ));
        }
        Ok(())
    }
}

/// `error` body.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ErrorIn {
    pub error: String,
}

impl ErrorIn {
    /// The error to keep on the task, cut to [`MAX_MESSAGE_BYTES`] on a character boundary.
    pub fn validate(self) -> Result<String, BodyError> {
        let mut error = self.error;
        if error.len() > MAX_MESSAGE_BYTES {
            let mut end = MAX_MESSAGE_BYTES;
            while !error.is_char_boundary(end) {
                end -= 1;
            }
            error.truncate(end);
        }
        if error.trim().is_empty() {
            return Err(BodyError::bad("error", "error must not be empty"));
        }
        Ok(error)
    }
}

/// `logs` body.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LogsIn {
    pub lines: Vec<String>,
}

impl LogsIn {
    /// The lines to append: 1 to [`MAX_LOG_LINES`], none longer than [`MAX_LOG_LINE_BYTES`].
    pub fn validate(self) -> Result<Vec<String>, BodyError> {
        if self.lines.len() > MAX_LOG_LINES {
            return Err(BodyError::large(
                "lines",
                format!(
                    "a batch holds at most {MAX_LOG_LINES} lines; got {}",
                    self.lines.len()
                ),
            ));
        }
        if let Some(i) = self.lines.iter().position(|l| l.len() > MAX_LOG_LINE_BYTES) {
            return Err(BodyError::large(
                "lines",
                format!("line {i} is longer than {MAX_LOG_LINE_BYTES} bytes"),
            ));
        }
        if self.lines.is_empty() {
            return Err(BodyError::bad("lines", "lines must not be empty"));
        }
        Ok(self.lines)
    }
}

/// The field a serde message is about: the path before it ("agent.preset: …"), or the name
/// in backticks of an unknown or missing field; `body` when it names none.
pub fn field_of(msg: &str) -> String {
    // A key may be empty (`{"": 1}`): then the message names no field.
    let named = msg
        .contains("field `")
        .then(|| msg.split('`').nth(1))
        .flatten()
        .filter(|n| !n.is_empty());
    let path = msg
        .split_once(": ")
        .map(|(p, _)| p)
        .filter(|p| !p.is_empty() && *p != "." && !p.contains(' '));
    match (path, named) {
        (Some(p), Some(n)) if msg.contains("unknown field") => format!("{p}.{n}"),
        (Some(p), _) => p.to_string(),
        (None, Some(n)) => n.to_string(),
        (None, None) => "body".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_batches_are_refused_naming_the_limit() {
        let many = LogsIn {
            lines: vec!["x".into(); MAX_LOG_LINES + 1],
        };
        let e = many.validate().unwrap_err();
        assert!(e.too_large && e.field == "lines", "{e:?}");
        let long = LogsIn {
            lines: vec!["ok".into(), "y".repeat(MAX_LOG_LINE_BYTES + 1)],
        };
        assert!(long.validate().unwrap_err().message.contains("line 1"));
        let none = LogsIn { lines: vec![] };
        assert!(!none.validate().unwrap_err().too_large);
        let fine = LogsIn {
            lines: vec!["a".into(), "b".into()],
        };
        assert_eq!(fine.validate().unwrap(), vec!["a", "b"]);
    }

    #[test]
    fn an_error_is_cut_on_a_character_boundary() {
        let e = ErrorIn {
            error: "é".repeat(MAX_MESSAGE_BYTES),
        };
        let kept = e.validate().unwrap();
        assert!(kept.len() <= MAX_MESSAGE_BYTES && kept.chars().all(|c| c == 'é'));
        assert!(ErrorIn { error: "  ".into() }.validate().is_err());
        // What is kept must say something, not only what would have been.
        let padded = ErrorIn {
            error: format!("{}x", " ".repeat(MAX_MESSAGE_BYTES)),
        };
        assert!(padded.validate().is_err());
    }

    #[test]
    fn status_and_pr_bodies_name_the_field_at_fault() {
        let bad = StatusIn {
            status: "flying".into(),
            message: None,
        };
        assert_eq!(bad.validate().unwrap_err().field, "status");
        let pr = PrIn {
            pr_url: "http://x/pr/1".into(),
            branch: "main".into(),
            head_sha: None,
            checks: None,
        };
        assert_eq!(pr.validate().unwrap_err().field, "branch");
        let ok = PrIn {
            pr_url: "http://x/pr/1".into(),
            branch: "apiary/t".into(),
            head_sha: Some("abc".into()),
            checks: None,
        }
        .validate()
        .unwrap();
        assert_eq!(ok.message.as_deref(), Some("head abc"));
    }

    #[test]
    fn pr_urls_are_http_only_and_the_branch_is_the_tasks_own() {
        let pr = |url: &str, branch: &str| PrIn {
            pr_url: url.into(),
            branch: branch.into(),
            head_sha: None,
            checks: None,
        };
        for bad in [
            "javascript:alert(1)",
            "JavaScript://%0aalert(1)",
            "data:text/html,x",
            "//evil.test/x",
            "http://",
            "https:///path",
            "http://@/x",
            "http://:80/x",
            "http://x.test/a b",
            "http://x.test/\nx",
            "http:\\\\evil.test",
            "ftp://x.test/1",
            "",
        ] {
            let e = pr(bad, "apiary/t1").validate().unwrap_err();
            assert_eq!(e.field, "pr_url", "{bad:?}");
        }
        for good in [
            "http://apiary.test/tasks/t9/review",
            "HTTPS://github.com/o/r/pull/1",
            "http://127.0.0.1:8080/tasks/t1/review?x=1#y",
        ] {
            assert!(pr(good, "apiary/t1").validate().is_ok(), "{good:?}");
        }
        let ok = pr("http://x.test/1", "apiary/t1-fix").validate().unwrap();
        assert!(ok.check_branch("apiary/t1-fix").is_ok());
        let e = ok.check_branch("apiary/t2-other").unwrap_err();
        assert_eq!(e.field, "branch");
    }

    #[test]
    fn field_of_reads_serde_messages() {
        assert_eq!(field_of("agent.preset: unknown variant"), "agent.preset");
        assert_eq!(
            field_of("unknown field `x`, expected `lines` at line 1 column 4"),
            "x"
        );
        assert_eq!(field_of("expected value at line 1 column 1"), "body");
        // Found by the fuzzer: an empty key named no field at all.
        let e = serde_json::from_str::<LogsIn>(r#"{"": 1}"#).unwrap_err();
        assert_eq!(field_of(&e.to_string()), "body");
    }
}
