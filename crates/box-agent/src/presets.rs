//! The documented non-interactive command line of each supported coding-agent CLI, run through
//! `sh -c`. Each reads the rendered prompt from `$APIARY_PROMPT_FILE`, works in the current
//! directory (the workspace) and does not commit: the box does.

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
        other => bail!(
            "unknown agent preset {other:?} (claude-code, codex, aider, opencode, gemini or script)"
        ),
    }
    .to_string())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::command_line;

    #[test]
    fn each_preset_is_its_documented_command_line() {
        let p = "\"$APIARY_PROMPT_FILE\"";
        let prompt = format!("\"$(cat {p})\"");
        for (preset, want) in [
            (
                "claude-code",
                format!("claude -p {prompt} --permission-mode acceptEdits --output-format text"),
            ),
            ("codex", format!("codex exec --full-auto {prompt}")),
            (
                "aider",
                format!("aider --yes-always --no-auto-commits --message-file {p}"),
            ),
            ("opencode", format!("opencode run {prompt}")),
            ("gemini", format!("gemini --yolo -p {prompt}")),
        ] {
            assert_eq!(command_line(preset).unwrap(), want, "{preset}");
        }
        let err = command_line("script").unwrap_err().to_string();
        assert!(err.contains("APIARY_AGENT_COMMAND"), "{err}");
        assert!(command_line("hal").unwrap_err().to_string().contains("hal"));
    }

    /// Each line, run by `sh -c` against stand-ins for the CLIs, hands over the whole prompt as
    /// one argument (quotes, `$` and newlines intact), or the file itself for aider.
    #[test]
    fn each_preset_passes_the_prompt_intact() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        for cli in ["claude", "codex", "aider", "opencode", "gemini"] {
            let path = bin.join(cli);
            std::fs::write(
                &path,
                "#!/bin/sh\nfor a in \"$@\"; do printf '<%s>\\n' \"$a\"; done\n",
            )
            .unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let prompt_file = dir.path().join("prompt-spec.md");
        let prompt = "Fix \"it\" for $HOME's sake\nand `this` too";
        std::fs::write(&prompt_file, prompt).unwrap();
        let path = format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        for (preset, prompt_arg) in [
            ("claude-code", 1),
            ("codex", 2),
            ("aider", 3),
            ("opencode", 1),
            ("gemini", 2),
        ] {
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(command_line(preset).unwrap())
                .env("PATH", &path)
                .env("APIARY_PROMPT_FILE", &prompt_file)
                .output()
                .unwrap();
            assert!(out.status.success(), "{preset}");
            let out = String::from_utf8(out.stdout).unwrap();
            let args: Vec<&str> = out
                .split_terminator(">\n")
                .map(|a| a.trim_start_matches('<'))
                .collect();
            let want = if preset == "aider" {
                prompt_file.to_str().unwrap()
            } else {
                prompt
            };
            assert_eq!(args[prompt_arg], want, "{preset}: {args:?}");
        }
    }
}
