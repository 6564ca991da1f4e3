//! How each supported coding-agent CLI is run inside a box, as its own documentation and its
//! released versions behave (claude-code 2.1, codex 0.171, opencode 1.18, gemini-cli 0.61,
//! aider 0.86): the non-interactive command line, the variables that point it at Apiary's model
//! gateway with the box's gateway token as its "API key", the files it wants in a fresh home,
//! and the structured output Apiary reads back. Each reads the rendered prompt from
//! `$APIARY_PROMPT_FILE`, works in the current directory (the workspace) and does not commit.
//!
//! The box is the sandbox (bubblewrap, its own network namespace, the egress proxy), so each
//! CLI runs with its own approval prompts and sandbox off: a CLI that asks for approval in a
//! non-interactive run refuses every real command (claude's `acceptEdits` refuses a test run),
//! and codex's own sandbox cannot start inside bubblewrap.

use anyhow::{bail, Result};
use serde_json::json;

use crate::transcript::Format;

/// Where the CLI finds the gateway, and what it presents there.
#[derive(Debug, Clone)]
pub struct Gateway {
    /// `<Apiary>/gateway`, without a trailing slash.
    pub url: String,
    pub token: String,
    /// The model to use (blank: the CLI's own default).
    pub model: String,
}

/// A preset made concrete for one box.
#[derive(Debug, Clone)]
pub struct Preset {
    /// The shell command line (`sh -c`).
    pub command: String,
    /// Variables for the agent's environment.
    pub env: Vec<(String, String)>,
    /// Files written into the agent's home before a run (path relative to the home).
    pub home_files: Vec<(String, String)>,
    /// How to read its standard output.
    pub output: Format,
}

/// Telemetry, update checks and other traffic a CLI would make besides the model's.
const QUIET: [(&str, &str); 9] = [
    ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1"),
    ("DISABLE_AUTOUPDATER", "1"),
    ("DISABLE_TELEMETRY", "1"),
    ("OPENCODE_DISABLE_AUTOUPDATE", "1"),
    ("OPENCODE_DISABLE_MODELS_FETCH", "1"),
    ("OPENCODE_DISABLE_SHARE", "1"),
    ("OPENCODE_DISABLE_LSP_DOWNLOAD", "1"),
    ("LITELLM_LOCAL_MODEL_COST_MAP", "True"),
    ("NO_UPDATE_NOTIFIER", "1"),
];

/// The preset `name` for a box reaching the gateway `gw`, for a run of `phase` (`spec`,
/// `revise`, `implement`, `changes`).
pub fn preset(name: &str, gw: &Gateway, phase: &str) -> Result<Preset> {
    let writing_spec = matches!(phase, "spec" | "revise");
    let model = gw.model.trim();
    let mut env: Vec<(String, String)> = QUIET
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let mut set = |k: &str, v: String| env.push((k.to_string(), v));
    let model_flag = |flag: &str| {
        if model.is_empty() {
            String::new()
        } else {
            format!(" {flag} \"$APIARY_AGENT_MODEL\"")
        }
    };
    let openai_v1 = format!("{}/openai/v1", gw.url);
    let (command, home_files, output) = match name {
        "claude-code" => {
            set("ANTHROPIC_BASE_URL", format!("{}/anthropic", gw.url));
            set("ANTHROPIC_API_KEY", gw.token.clone());
            // Permissions off is refused as root unless the CLI is told it is sandboxed.
            set("IS_SANDBOX", "1".into());
            // An error answer is retried ten times by default, for minutes.
            set("CLAUDE_CODE_MAX_RETRIES", "3".into());
            (
                format!(
                    r#"claude -p "$(cat "$APIARY_PROMPT_FILE")" --dangerously-skip-permissions --output-format stream-json --verbose{}"#,
                    model_flag("--model")
                ),
                vec![],
                Format::Claude,
            )
        }
        "codex" => {
            set("OPENAI_API_KEY", gw.token.clone());
            (
                format!(
                    "codex exec -c model_providers.apiary.name=apiary \
                     -c model_providers.apiary.base_url={openai_v1} \
                     -c model_providers.apiary.env_key=OPENAI_API_KEY \
                     -c model_providers.apiary.wire_api=responses \
                     -c model_provider=apiary{} -s danger-full-access --skip-git-repo-check --json \
                     --disable plugins --disable apps -c analytics.enabled=false \
                     \"$(cat \"$APIARY_PROMPT_FILE\")\"",
                    model_flag("-m")
                ),
                vec![],
                Format::Codex,
            )
        }
        "opencode" => {
            set("APIARY_OPENCODE_KEY", gw.token.clone());
            let model_id = if model.is_empty() { "default" } else { model };
            let config = json!({
                "model": format!("apiary/{model_id}"),
                "provider": {"apiary": {
                    "npm": "@ai-sdk/openai-compatible",
                    "name": "Apiary",
                    "options": {"baseURL": openai_v1, "apiKey": "{env:APIARY_OPENCODE_KEY}"},
                    "models": {model_id: {}},
                }},
                "permission": {"*": "allow", "external_directory": "allow"},
                "autoupdate": false,
                "share": "disabled",
            });
            set("OPENCODE_CONFIG_CONTENT", config.to_string());
            (
                r#"opencode run --format json < "$APIARY_PROMPT_FILE""#.to_string(),
                vec![],
                Format::Opencode,
            )
        }
        "gemini" => {
            set("GEMINI_API_KEY", gw.token.clone());
            set("GOOGLE_GEMINI_BASE_URL", format!("{}/gemini", gw.url));
            set("GEMINI_CLI_TRUST_WORKSPACE", "true".into());
            let settings = json!({
                "security": {"auth": {"selectedType": "gemini-api-key"}},
                "privacy": {"usageStatisticsEnabled": false},
                "telemetry": {"enabled": false},
                "general": {"enableAutoUpdate": false, "enableAutoUpdateNotification": false},
            });
            (
                format!(
                    r#"gemini -p "$(cat "$APIARY_PROMPT_FILE")" --yolo --output-format stream-json{}"#,
                    model_flag("-m")
                ),
                vec![(".gemini/settings.json".into(), settings.to_string())],
                Format::Gemini,
            )
        }
        "aider" => {
            set("OPENAI_API_KEY", gw.token.clone());
            set("OPENAI_API_BASE", openai_v1);
            if writing_spec {
                // The project's test command (`AIDER_TEST_CMD`) is for the code, not the spec.
                set("AIDER_AUTO_TEST", "false".into());
                set("AIDER_AUTO_LINT", "false".into());
            }
            let model_id = if model.is_empty() { "gpt-5" } else { model };
            // Its model list comes from the internet unless the model is described here.
            let meta = json!({ format!("openai/{model_id}"): {
                "max_tokens": 32768, "max_input_tokens": 200000, "max_output_tokens": 32768,
                "input_cost_per_token": 0, "output_cost_per_token": 0,
                "litellm_provider": "openai", "mode": "chat"}});
            (
                format!(
                    "aider --model \"openai/${{APIARY_AGENT_MODEL:-{model_id}}}\" --model-metadata-file \"$HOME/.aider.model.metadata.json\" \
                     --yes-always --no-auto-commits --no-git --no-gitignore --no-check-update \
                     --analytics-disable --no-show-model-warnings --no-show-release-notes --no-pretty \
                     --no-fancy-input --chat-history-file \"$HOME/.aider.chat.history.md\" \
                     --input-history-file \"$HOME/.aider.input.history\" \
                     --message-file \"$APIARY_PROMPT_FILE\""
                ),
                vec![
                    (".aider.model.metadata.json".into(), meta.to_string()),
                    // A fresh model list in its cache: no download from the internet.
                    (
                        ".aider/caches/model_prices_and_context_window.json".into(),
                        meta.to_string(),
                    ),
                ],
                Format::Aider,
            )
        }
        "script" => bail!("the script preset needs APIARY_AGENT_COMMAND (the project's command)"),
        other => bail!(
            "unknown agent preset {other:?} (claude-code, codex, aider, opencode, gemini or script)"
        ),
    };
    Ok(Preset {
        command,
        env,
        home_files,
        output,
    })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn gw(model: &str) -> Gateway {
        Gateway {
            url: "http://127.0.0.1:7878/gateway".into(),
            token: "apiary_gw_secret".into(),
            model: model.into(),
        }
    }

    fn env_of(p: &Preset, k: &str) -> Option<String> {
        p.env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    }

    #[test]
    fn each_preset_points_its_cli_at_the_gateway_with_the_box_token() {
        let claude = preset("claude-code", &gw("claude-haiku-4-5"), "implement").unwrap();
        assert_eq!(
            env_of(&claude, "ANTHROPIC_BASE_URL").unwrap(),
            "http://127.0.0.1:7878/gateway/anthropic"
        );
        assert_eq!(
            env_of(&claude, "ANTHROPIC_API_KEY").unwrap(),
            "apiary_gw_secret"
        );
        assert!(claude.command.contains("--dangerously-skip-permissions"));
        assert!(claude.command.contains("--model \"$APIARY_AGENT_MODEL\""));
        let codex = preset("codex", &gw(""), "implement").unwrap();
        assert!(!codex.command.contains("--full-auto") && !codex.command.contains(" -m "));
        assert!(codex
            .command
            .contains("base_url=http://127.0.0.1:7878/gateway/openai/v1"));
        let opencode = preset("opencode", &gw("gpt-5"), "implement").unwrap();
        let config: serde_json::Value =
            serde_json::from_str(&env_of(&opencode, "OPENCODE_CONFIG_CONTENT").unwrap()).unwrap();
        assert_eq!(config["model"], "apiary/gpt-5");
        let gemini = preset("gemini", &gw("gemini-2.5-pro"), "implement").unwrap();
        assert!(gemini.home_files[0].1.contains("gemini-api-key"));
        let aider = preset("aider", &gw("gpt-5"), "implement").unwrap();
        assert!(aider.command.contains("--no-gitignore"));
        assert!(aider
            .command
            .contains(r#"--model "openai/${APIARY_AGENT_MODEL:-gpt-5}""#));
        for p in [&claude, &codex, &opencode, &gemini, &aider] {
            assert!(!p.command.contains("apiary_gw_secret"), "{}", p.command);
        }
        let err = preset("script", &gw(""), "spec").unwrap_err().to_string();
        assert!(err.contains("APIARY_AGENT_COMMAND"), "{err}");
        assert!(preset("hal", &gw(""), "spec")
            .unwrap_err()
            .to_string()
            .contains("hal"));
    }

    /// Each line, run by `sh -c` against stand-ins for the CLIs, hands over the whole prompt as
    /// one argument (quotes, `$` and newlines intact), the file itself for aider, or on stdin
    /// for opencode.
    #[test]
    fn each_preset_passes_the_prompt_intact() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        for cli in ["claude", "codex", "aider", "opencode", "gemini"] {
            let path = bin.join(cli);
            std::fs::write(
                &path,
                "#!/bin/sh\nfor a in \"$@\"; do printf '<%s>\\n' \"$a\"; done\n[ -t 0 ] || printf '<%s>\\n' \"$(cat)\"\n",
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
        for preset_name in ["claude-code", "codex", "aider", "opencode", "gemini"] {
            let p = preset(preset_name, &gw("m1"), "spec").unwrap();
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(&p.command)
                .env("PATH", &path)
                .env("APIARY_AGENT_MODEL", "m1")
                .env("HOME", dir.path())
                .env("APIARY_PROMPT_FILE", &prompt_file)
                .stdin(std::process::Stdio::null())
                .output()
                .unwrap();
            assert!(out.status.success(), "{preset_name}");
            let out = String::from_utf8(out.stdout).unwrap();
            let args: Vec<&str> = out
                .split_terminator(">\n")
                .map(|a| a.trim_start_matches('<'))
                .collect();
            let want = if preset_name == "aider" {
                prompt_file.to_str().unwrap()
            } else {
                prompt
            };
            assert!(args.contains(&want), "{preset_name}: {args:?}");
        }
    }
}
