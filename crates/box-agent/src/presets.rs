//! The documented non-interactive command line of each supported coding-agent CLI. Each reads
//! the rendered prompt from `$APIARY_PROMPT_FILE` and works in the current directory.

use anyhow::{bail, Result};

/// The shell command line of a preset.
pub fn command_line(preset: &str) -> Result<String> {
    Ok(match preset {
        "claude-code" => r#"claude -p "$(cat "$APIARY_PROMPT_FILE")" --permission-mode acceptEdits --output-format text"#,
        "codex" => r#"codex exec --full-auto "$(cat "$APIARY_PROMPT_FILE")""#,
        "aider" => r#"aider --yes-always --no-auto-commits --message-file "$APIARY_PROMPT_FILE""#,
        "opencode" => r#"opencode run "$(cat "$APIARY_PROMPT_FILE")""#,
        "gemini" => r#"gemini --yolo -p "$(cat "$APIARY_PROMPT_FILE")""#,
        "script" => bail!("the script preset needs APIARY_AGENT_COMMAND (the project's command)"),
        other => bail!("unknown agent preset {other:?}"),
    }
    .to_string())
}

#[cfg(test)]
mod tests {
    use super::command_line;

    #[test]
    fn each_preset_reads_the_prompt_file_non_interactively() {
        for (preset, must) in [
            ("claude-code", "claude -p"),
            ("codex", "codex exec --full-auto"),
            ("aider", "--message-file \"$APIARY_PROMPT_FILE\""),
            ("opencode", "opencode run"),
            ("gemini", "gemini --yolo -p"),
        ] {
            let line = command_line(preset).unwrap();
            assert!(line.contains(must), "{preset}: {line}");
            assert!(
                line.contains("$APIARY_PROMPT_FILE"),
                "{preset} reads the prompt file"
            );
        }
        assert!(command_line("script").is_err());
        assert!(command_line("hal").is_err());
    }
}
