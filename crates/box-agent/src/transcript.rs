//! Reads a CLI's structured output (claude's `stream-json`, codex's `--json`, opencode's
//! `--format json`, gemini's `stream-json`) as it streams: each event becomes a readable log
//! line (tool calls, commands and their exit codes, files written, the answer), and the run's
//! verdict is taken from what happened, not from the exit code: the CLIs exit 0 after refused
//! tool calls or a failed turn.

use serde_json::Value;

/// How a CLI prints its run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Plain text (custom commands): lines go to the log as they are.
    Plain,
    /// Aider's plain text, watched for a test command it could not make pass.
    Aider,
    Claude,
    Codex,
    Opencode,
    Gemini,
}

/// Longest piece of a tool's input or output shown in a log line.
const SHOWN: usize = 300;

fn clip(s: &str) -> String {
    let one_line = s.trim().replace('\n', " ⏎ ");
    if one_line.chars().count() > SHOWN {
        let cut: String = one_line.chars().take(SHOWN).collect();
        format!("{cut}…")
    } else {
        one_line
    }
}

/// What a run did, read from its output.
#[derive(Debug, Default)]
pub struct Transcript {
    format: Option<Format>,
    /// Tool calls the CLI refused (permissions), by name.
    pub refused: Vec<String>,
    /// Whether the last tool call failed, and how.
    pub last_tool_failure: Option<String>,
    /// The CLI said the turn failed (an API error, …).
    pub failure: Option<String>,
    /// The agent's final answer (the spec, when no spec file was written).
    pub answer: String,
}

impl Transcript {
    pub fn new(format: Format) -> Self {
        Transcript {
            format: Some(format),
            ..Default::default()
        }
    }

    /// Whether output is structured (the answer then comes from the events, not stdout).
    pub fn structured(&self) -> bool {
        !matches!(self.format, Some(Format::Plain | Format::Aider) | None)
    }

    /// Whether stdout is read at all (plain custom commands are only logged).
    pub fn watched(&self) -> bool {
        !matches!(self.format, Some(Format::Plain) | None)
    }

    /// Reads one line of stdout; returns the log lines it becomes.
    pub fn line(&mut self, raw: &str) -> Vec<String> {
        let format = self.format.unwrap_or(Format::Plain);
        if format == Format::Plain {
            return vec![raw.to_string()];
        }
        if format == Format::Aider {
            self.aider(raw);
            return vec![raw.to_string()];
        }
        let Ok(v) = serde_json::from_str::<Value>(raw.trim()) else {
            return vec![raw.to_string()];
        };
        match format {
            Format::Claude => self.claude(&v),
            Format::Codex => self.codex(&v),
            Format::Opencode => self.opencode(&v),
            Format::Gemini => self.gemini(&v),
            Format::Plain | Format::Aider => unreachable!(),
        }
    }

    fn tool_result(&mut self, ok: bool, what: String) {
        self.last_tool_failure = (!ok).then_some(what);
    }

    /// Aider runs its test command after each edit and adds a failing run's output to the
    /// chat; an edit after that starts over. It gives up after a few rounds and exits 0.
    fn aider(&mut self, line: &str) {
        let line = line.trim();
        if line.starts_with("Applied edit to ") {
            self.last_tool_failure = None;
        } else if line.starts_with("Added ") && line.ends_with("of output to the chat.") {
            self.last_tool_failure = Some("the test command failed".into());
        } else if line.contains("reflections allowed, stopping") {
            self.failure = Some(format!("aider gave up: {line}"));
        }
    }

    fn claude(&mut self, v: &Value) -> Vec<String> {
        let mut out = Vec::new();
        let blocks = v
            .pointer("/message/content")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        match v["type"].as_str() {
            Some("system") if v["subtype"] == "init" => out.push(format!(
                "agent: claude-code {} (model {})",
                v["claude_code_version"].as_str().unwrap_or("?"),
                v["model"].as_str().unwrap_or("?")
            )),
            Some("system") if v["subtype"] == "api_retry" => out.push(format!(
                "agent: model API error {}, retry {} of {}",
                v["error_status"], v["attempt"], v["max_retries"]
            )),
            Some("assistant") => {
                for b in blocks {
                    match b["type"].as_str() {
                        Some("text") => {
                            out.push(format!("agent: {}", clip(b["text"].as_str().unwrap_or(""))))
                        }
                        Some("tool_use") => {
                            let input = &b["input"];
                            let shown = input["command"]
                                .as_str()
                                .map(|c| format!("$ {c}"))
                                .or_else(|| {
                                    input["file_path"].as_str().map(|f| format!("file {f}"))
                                })
                                .unwrap_or_else(|| input.to_string());
                            out.push(format!(
                                "tool {}: {}",
                                b["name"].as_str().unwrap_or("?"),
                                clip(&shown)
                            ));
                        }
                        _ => {}
                    }
                }
            }
            Some("user") => {
                for b in blocks.iter().filter(|b| b["type"] == "tool_result") {
                    let failed = b["is_error"] == true;
                    let text = match &b["content"] {
                        Value::String(s) => s.clone(),
                        Value::Array(parts) => parts
                            .iter()
                            .filter_map(|p| p["text"].as_str())
                            .collect::<Vec<_>>()
                            .join("\n"),
                        _ => String::new(),
                    };
                    if failed && text.contains("requested permissions") {
                        self.refused.push(clip(&text));
                    }
                    self.tool_result(!failed, clip(&text));
                    let mark = if failed { "failed" } else { "ok" };
                    out.push(format!("  → {mark}: {}", clip(&text)));
                }
            }
            Some("result") => {
                self.answer = v["result"].as_str().unwrap_or("").to_string();
                if let Some(denials) = v["permission_denials"].as_array() {
                    for d in denials {
                        let name = d["tool_name"].as_str().unwrap_or("?").to_string();
                        if !self.refused.iter().any(|r| r.contains(&name)) {
                            self.refused.push(name);
                        }
                    }
                }
                if v["is_error"] == true {
                    self.failure = Some(clip(&self.answer));
                }
                out.push(format!(
                    "agent finished: {} ({} turns, {} input / {} output tokens)",
                    v["subtype"].as_str().unwrap_or("?"),
                    v["num_turns"],
                    v.pointer("/usage/input_tokens").unwrap_or(&Value::Null),
                    v.pointer("/usage/output_tokens").unwrap_or(&Value::Null)
                ));
            }
            _ => {}
        }
        out
    }

    fn codex(&mut self, v: &Value) -> Vec<String> {
        let item = &v["item"];
        match (v["type"].as_str(), item["type"].as_str()) {
            (Some("item.started"), Some("command_execution")) => {
                vec![format!(
                    "tool exec: $ {}",
                    clip(item["command"].as_str().unwrap_or(""))
                )]
            }
            (Some("item.completed"), Some("command_execution")) => {
                let code = item["exit_code"].as_i64();
                let ok = code == Some(0);
                let output = clip(item["aggregated_output"].as_str().unwrap_or(""));
                self.tool_result(ok, format!("exit code {code:?}: {output}"));
                vec![format!(
                    "  → exit {}: {output}",
                    code.map_or("?".to_string(), |c| c.to_string())
                )]
            }
            (Some("item.completed"), Some("file_change")) => {
                let ok = item["status"] != "failed";
                self.tool_result(ok, "file change failed".into());
                let files: Vec<String> = item["changes"]
                    .as_array()
                    .map(|c| {
                        c.iter()
                            .filter_map(|f| f["path"].as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default();
                vec![format!("tool patch: {}", files.join(", "))]
            }
            (Some("item.completed"), Some("agent_message")) => {
                self.answer = item["text"].as_str().unwrap_or("").to_string();
                vec![format!("agent: {}", clip(&self.answer))]
            }
            (Some("item.completed"), Some("error")) => {
                vec![format!(
                    "agent note: {}",
                    clip(item["message"].as_str().unwrap_or(""))
                )]
            }
            (Some("turn.failed"), _) | (Some("error"), _) => {
                let msg = v
                    .pointer("/error/message")
                    .or_else(|| v.get("message"))
                    .and_then(Value::as_str)
                    .unwrap_or("?");
                if v["type"] == "turn.failed" {
                    self.failure = Some(clip(msg));
                }
                vec![format!("agent error: {}", clip(msg))]
            }
            (Some("turn.completed"), _) => vec![format!(
                "agent finished ({} input / {} output tokens)",
                v.pointer("/usage/input_tokens").unwrap_or(&Value::Null),
                v.pointer("/usage/output_tokens").unwrap_or(&Value::Null)
            )],
            _ => vec![],
        }
    }

    fn opencode(&mut self, v: &Value) -> Vec<String> {
        let part = &v["part"];
        match v["type"].as_str() {
            Some("tool_use") => {
                let state = &part["state"];
                let tool = part["tool"].as_str().unwrap_or("?");
                let input = &state["input"];
                let shown = input["command"]
                    .as_str()
                    .map(|c| format!("$ {c}"))
                    .or_else(|| input["filePath"].as_str().map(|f| format!("file {f}")))
                    .unwrap_or_else(|| input.to_string());
                let (ok, result) = match state["status"].as_str() {
                    Some("error") => (false, state["error"].as_str().unwrap_or("").to_string()),
                    _ => {
                        let exit = state.pointer("/metadata/exit").and_then(Value::as_i64);
                        let output = state["output"].as_str().unwrap_or("").to_string();
                        match exit {
                            Some(code) if code != 0 => {
                                (false, format!("exit code {code}: {output}"))
                            }
                            _ => (true, output),
                        }
                    }
                };
                if !ok && result.contains("rejected permission") {
                    self.refused.push(format!("{tool}: {}", clip(&result)));
                }
                self.tool_result(ok, clip(&result));
                vec![
                    format!("tool {tool}: {}", clip(&shown)),
                    format!(
                        "  → {}: {}",
                        if ok { "ok" } else { "failed" },
                        clip(&result)
                    ),
                ]
            }
            Some("text") => {
                let text = part["text"].as_str().unwrap_or("").to_string();
                self.answer = text.clone();
                vec![format!("agent: {}", clip(&text))]
            }
            Some("error") => {
                let msg = v
                    .pointer("/error/data/message")
                    .or_else(|| v.pointer("/error/message"))
                    .and_then(Value::as_str)
                    .unwrap_or("?")
                    .to_string();
                self.failure = Some(clip(&msg));
                vec![format!("agent error: {}", clip(&msg))]
            }
            _ => vec![],
        }
    }

    fn gemini(&mut self, v: &Value) -> Vec<String> {
        match v["type"].as_str() {
            Some("init") => vec![format!(
                "agent: gemini (model {})",
                v["model"].as_str().unwrap_or("?")
            )],
            Some("tool_use") => {
                let p = &v["parameters"];
                let shown = p["command"]
                    .as_str()
                    .map(|c| format!("$ {c}"))
                    .or_else(|| p["file_path"].as_str().map(|f| format!("file {f}")))
                    .unwrap_or_else(|| p.to_string());
                vec![format!(
                    "tool {}: {}",
                    v["tool_name"].as_str().unwrap_or("?"),
                    clip(&shown)
                )]
            }
            Some("tool_result") => {
                let text = v["output"]
                    .as_str()
                    .or_else(|| v.pointer("/error/message").and_then(Value::as_str))
                    .unwrap_or("")
                    .to_string();
                // Its shell tool refuses some commands with a "success" that says so.
                if text.starts_with("Blocked:") {
                    self.refused.push(clip(&text));
                }
                let ok = v["status"] == "success" && !text.starts_with("Blocked:");
                self.tool_result(ok, clip(&text));
                vec![format!(
                    "  → {}: {}",
                    if ok { "ok" } else { "failed" },
                    clip(&text)
                )]
            }
            Some("message") if v["role"] == "assistant" => {
                let text = v["content"].as_str().unwrap_or("");
                if v["delta"] == true {
                    self.answer.push_str(text);
                } else {
                    self.answer = text.to_string();
                }
                vec![format!("agent: {}", clip(text))]
            }
            Some("error") => {
                let msg = v["message"].as_str().unwrap_or("?").to_string();
                vec![format!("agent error: {}", clip(&msg))]
            }
            Some("result") => {
                if v["status"] != "success" {
                    let msg = v
                        .pointer("/error/message")
                        .and_then(Value::as_str)
                        .unwrap_or("the turn failed")
                        .to_string();
                    self.failure = Some(clip(&msg));
                }
                vec![format!(
                    "agent finished: {} ({} tool calls, {} tokens)",
                    v["status"].as_str().unwrap_or("?"),
                    v.pointer("/stats/tool_calls").unwrap_or(&Value::Null),
                    v.pointer("/stats/total_tokens").unwrap_or(&Value::Null)
                )]
            }
            _ => vec![],
        }
    }

    /// Whether the run did what a successful run does: no refused tool call, no failed turn,
    /// and — when `changing_code` (implement and changes runs, whose last check should pass)
    /// — not ended right after a failed tool call. A spec run may well end on a `grep` that
    /// found nothing.
    pub fn verdict(&self, changing_code: bool) -> Result<(), String> {
        if let Some(f) = &self.failure {
            return Err(format!("the agent's run failed: {f}"));
        }
        if !self.refused.is_empty() {
            return Err(format!(
                "the agent's tool calls were refused: {}",
                self.refused.join("; ")
            ));
        }
        if let (true, Some(f)) = (changing_code, &self.last_tool_failure) {
            return Err(format!("the agent stopped after a failed tool call: {f}"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(format: Format, lines: &[&str]) -> (Transcript, Vec<String>) {
        let mut t = Transcript::new(format);
        let out = lines.iter().flat_map(|l| t.line(l)).collect();
        (t, out)
    }

    #[test]
    fn claude_runs_become_readable_lines_and_refusals_fail_the_run() {
        let (t, out) = read(
            Format::Claude,
            &[
                r#"{"type":"system","subtype":"init","model":"m","claude_code_version":"2.1.197"}"#,
                r#"{"type":"assistant","message":{"content":[{"type":"tool_use","name":"Bash","input":{"command":"make test"}}]}}"#,
                r#"{"type":"user","message":{"content":[{"type":"tool_result","content":"Exit code 2\nfail","is_error":true}]}}"#,
                r#"{"type":"assistant","message":{"content":[{"type":"tool_use","name":"Write","input":{"file_path":"/ws/a.txt","content":"x"}}]}}"#,
                r#"{"type":"user","message":{"content":[{"type":"tool_result","content":"File created successfully"}]}}"#,
                r#"{"type":"result","subtype":"success","is_error":false,"result":"All done","num_turns":3,"usage":{"input_tokens":5,"output_tokens":6},"permission_denials":[]}"#,
            ],
        );
        assert!(
            out.contains(&"tool Bash: $ make test".to_string()),
            "{out:?}"
        );
        assert!(out.iter().any(|l| l.starts_with("  → failed: Exit code 2")));
        assert_eq!(t.answer, "All done");
        assert_eq!(
            t.verdict(true),
            Ok(()),
            "a failure the agent recovered from is work"
        );
        let (t, _) = read(
            Format::Claude,
            &[
                r#"{"type":"user","message":{"content":[{"type":"tool_result","content":"Claude requested permissions to write to /ws/x, but you haven't granted it yet.","is_error":true}]}}"#,
                r#"{"type":"result","subtype":"success","is_error":false,"result":"Done.","permission_denials":[{"tool_name":"Write"}]}"#,
            ],
        );
        assert!(t.verdict(true).unwrap_err().contains("refused"));
        let (t, _) = read(
            Format::Claude,
            &[r#"{"type":"result","subtype":"success","is_error":true,"result":"API Error: 500"}"#],
        );
        assert!(t.verdict(true).unwrap_err().contains("API Error: 500"));
    }

    #[test]
    fn aider_giving_up_on_a_failing_test_command_fails_the_run() {
        let (t, out) = read(
            Format::Aider,
            &[
                "Applied edit to hello.txt",
                "FAILED: 1 test",
                "Added 2 lines of output to the chat.",
                "Applied edit to hello.txt",
            ],
        );
        assert_eq!(out.len(), 4, "the lines are logged as they are");
        assert_eq!(t.verdict(true), Ok(()), "fixed after one failure");
        let (t, _) = read(
            Format::Aider,
            &[
                "Applied edit to hello.txt",
                "Added 2 lines of output to the chat.",
            ],
        );
        assert!(t
            .verdict(true)
            .unwrap_err()
            .contains("the test command failed"));
        let (t, _) = read(Format::Aider, &["Only 3 reflections allowed, stopping."]);
        assert!(t.verdict(true).unwrap_err().contains("aider gave up"));
    }

    #[test]
    fn codex_opencode_and_gemini_failures_are_seen() {
        let (t, out) = read(
            Format::Codex,
            &[
                r#"{"type":"item.started","item":{"type":"command_execution","command":"bash -lc 'exit 3'"}}"#,
                r#"{"type":"item.completed","item":{"type":"command_execution","aggregated_output":"boom\n","exit_code":3,"status":"failed"}}"#,
                r#"{"type":"item.completed","item":{"type":"agent_message","text":"Done."}}"#,
            ],
        );
        assert!(out.contains(&"  → exit 3: boom".to_string()), "{out:?}");
        assert!(t.verdict(true).unwrap_err().contains("exit code Some(3)"));
        assert_eq!(
            t.verdict(false),
            Ok(()),
            "a spec run may end on a failed search"
        );
        let (t, _) = read(
            Format::Codex,
            &[r#"{"type":"turn.failed","error":{"message":"unexpected status 401"}}"#],
        );
        assert!(t.verdict(true).unwrap_err().contains("401"));
        let (t, _) = read(
            Format::Opencode,
            &[
                r#"{"type":"tool_use","part":{"tool":"read","state":{"status":"error","input":{"filePath":"/etc/x"},"error":"The user rejected permission to use this specific tool call."}}}"#,
            ],
        );
        assert!(t.verdict(true).unwrap_err().contains("refused"));
        let (t, out) = read(
            Format::Gemini,
            &[
                r#"{"type":"tool_use","tool_name":"run_shell_command","parameters":{"command":"make test"}}"#,
                r#"{"type":"tool_result","status":"success","output":"ok"}"#,
                r#"{"type":"message","role":"assistant","content":"All ","delta":true}"#,
                r#"{"type":"message","role":"assistant","content":"done","delta":true}"#,
                r#"{"type":"result","status":"success","stats":{"tool_calls":1,"total_tokens":9}}"#,
            ],
        );
        assert_eq!(t.answer, "All done");
        assert_eq!(t.verdict(true), Ok(()));
        assert!(out.contains(&"tool run_shell_command: $ make test".to_string()));
        let (t, _) = read(
            Format::Gemini,
            &[
                r#"{"type":"tool_result","status":"success","output":"Blocked: command substitution detected in shell command."}"#,
                r#"{"type":"tool_result","status":"success","output":"ok"}"#,
                r#"{"type":"result","status":"success"}"#,
            ],
        );
        assert!(t.verdict(true).unwrap_err().contains("refused: Blocked"));
    }
}
