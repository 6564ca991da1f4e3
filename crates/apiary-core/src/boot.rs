//! The boot env of a box (DESIGN §4): the only input a box gets.

use std::collections::BTreeMap;

use crate::settings::Timeouts;

/// Everything the boot env is made from.
#[derive(Debug, Clone)]
pub struct BootInput {
    pub apiary_url: String,
    pub task_id: String,
    pub callback_token: String,
    pub control_token: String,
    pub repo_url: String,
    pub base_branch: String,
    pub branch: String,
    /// A preset name (`claude-code`, …, `script`).
    pub preset: String,
    /// A custom command; wins over the preset when not blank.
    pub command: String,
    pub forge: String,
    /// For the `github` forge: the API base and the project's token.
    pub github: Option<(String, String)>,
    /// Hosts the agent may reach through the box's egress proxy.
    pub egress_allow: Vec<String>,
    /// The agent's key to Apiary's model gateway (bound to this box).
    pub gateway_token: String,
    /// The model the preset's CLI is told to use (blank: the CLI's own default).
    pub model: String,
    /// Plain environment variables for the agent (global, then the project's).
    pub agent_env: BTreeMap<String, String>,
}

/// `host:port` of a URL (the scheme's default port when it names none; no userinfo), as an
/// allowlist entry: never a bare host, which would open every port of it.
pub fn host_port(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let auth = rest.split(['/', '?', '#']).next()?;
    let auth = auth
        .rsplit_once('@')
        .map_or(auth, |(_, a)| a)
        .to_ascii_lowercase();
    let has_port = match auth.rfind(']') {
        Some(end) => auth[end..].contains(':'),
        None => auth.contains(':'),
    };
    if auth.is_empty() {
        return None;
    }
    if has_port {
        return Some(auth);
    }
    let port = match scheme.to_ascii_lowercase().as_str() {
        "https" => 443,
        "http" => 80,
        "ssh" | "git+ssh" => 22,
        "git" => 9418,
        _ => return None,
    };
    Some(format!("{auth}:{port}"))
}

/// What a box's agent may reach: the admin's list, Apiary's own URL and the project's git
/// remote, each as exactly `host:port` (a bare host would open every port of it — on a
/// loopback forge, every service of the host); a local path has no git host.
pub fn egress_allow(admin: &[String], apiary_url: &str, repo_url: &str) -> Vec<String> {
    /// `git@host:owner/repo` (scp-like, over ssh).
    fn scp_host(url: &str) -> Option<String> {
        if url.starts_with('/') || url.contains("://") {
            return None;
        }
        let (user_host, path) = url.split_once(':')?;
        let host = user_host.rsplit('@').next()?.to_ascii_lowercase();
        (!host.is_empty() && !path.is_empty() && !host.contains('/')).then(|| format!("{host}:22"))
    }
    let mut out: Vec<String> = admin.to_vec();
    out.extend(host_port(apiary_url));
    out.extend(host_port(repo_url).or_else(|| scp_host(repo_url)));
    out.sort();
    out.dedup();
    out
}

/// The agent's run timeouts, a little inside the watchdog's phase budgets so the box reports
/// its own timeout before the watchdog gives up on it: (spec, implement) in seconds.
pub fn run_timeouts(t: &Timeouts) -> (u64, u64) {
    let inside = |budget: u64| (budget * 9 / 10).max(1);
    (inside(t.speccing_s), inside(t.implementing_s))
}

/// The boot env for a box.
pub fn boot_env(input: &BootInput, timeouts: &Timeouts) -> BTreeMap<String, String> {
    let (spec_s, impl_s) = run_timeouts(timeouts);
    let mut env = BTreeMap::from([
        (
            "APIARY_URL".to_string(),
            input.apiary_url.trim_end_matches('/').to_string(),
        ),
        ("APIARY_TASK_ID".into(), input.task_id.clone()),
        ("APIARY_CALLBACK_TOKEN".into(), input.callback_token.clone()),
        ("APIARY_CONTROL_TOKEN".into(), input.control_token.clone()),
        ("APIARY_REPO_URL".into(), input.repo_url.clone()),
        ("APIARY_BASE_BRANCH".into(), input.base_branch.clone()),
        ("APIARY_BRANCH".into(), input.branch.clone()),
        ("APIARY_FORGE".into(), input.forge.clone()),
        ("APIARY_SPEC_RUN_TIMEOUT".into(), spec_s.to_string()),
        ("APIARY_IMPL_RUN_TIMEOUT".into(), impl_s.to_string()),
        ("APIARY_AGENT".into(), input.preset.clone()),
        ("APIARY_ORPHAN_S".into(), timeouts.orphan_s.to_string()),
        ("APIARY_EGRESS_ALLOW".into(), input.egress_allow.join(",")),
        ("APIARY_GATEWAY_TOKEN".into(), input.gateway_token.clone()),
    ]);
    if !input.model.trim().is_empty() {
        env.insert("APIARY_AGENT_MODEL".into(), input.model.trim().to_string());
    }
    if !input.agent_env.is_empty() {
        // One variable, as JSON: the box agent hands each to the agent (never to itself).
        let json = serde_json::to_string(&input.agent_env).unwrap_or_default();
        env.insert("APIARY_AGENT_ENV".into(), json);
    }
    if !input.command.trim().is_empty() {
        env.insert("APIARY_AGENT_COMMAND".into(), input.command.clone());
    }
    if let Some((api, token)) = &input.github {
        env.insert("APIARY_GITHUB_API".into(), api.clone());
        env.insert("APIARY_GITHUB_TOKEN".into(), token.clone());
    }
    env
}

/// The box's branch: `apiary/<task-id>-<slug of the title>`.
pub fn branch_name(task_id: &str, title: &str) -> String {
    let mut slug = String::new();
    for c in title.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            slug.push(c);
        } else if !slug.ends_with('-') && !slug.is_empty() {
            slug.push('-');
        }
        if slug.len() >= 40 {
            break;
        }
    }
    let slug = slug.trim_end_matches('-');
    if slug.is_empty() {
        format!("apiary/{task_id}")
    } else {
        format!("apiary/{task_id}-{slug}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn branch_names_are_safe_slugs() {
        assert_eq!(
            branch_name("t1", "Fix the footer (again)!"),
            "apiary/t1-fix-the-footer-again"
        );
        assert_eq!(branch_name("t1", "Ünïcödé ..."), "apiary/t1-n-c-d");
        assert_eq!(branch_name("t1", "!!!"), "apiary/t1");
        assert!(branch_name("t1", &"long words ".repeat(20)).len() <= "apiary/t1-".len() + 41);
    }

    #[test]
    fn the_boot_env_carries_the_contract_and_timeouts_inside_the_budgets() {
        let input = BootInput {
            apiary_url: "http://127.0.0.1:7878/".into(),
            task_id: "t1".into(),
            callback_token: "cb".into(),
            control_token: "ctl".into(),
            repo_url: "/srv/r.git".into(),
            base_branch: "main".into(),
            branch: "apiary/t1-x".into(),
            preset: "script".into(),
            command: "./agent.sh".into(),
            forge: "local".into(),
            github: None,
            egress_allow: vec!["pypi.org".into()],
            gateway_token: "gw".into(),
            model: " claude-haiku-4-5 ".into(),
            agent_env: BTreeMap::from([(
                "NODE_OPTIONS".into(),
                "--max-old-space-size=4096".into(),
            )]),
        };
        let t = Timeouts {
            speccing_s: 100,
            implementing_s: 1000,
            ..Timeouts::default()
        };
        let env = boot_env(&input, &t);
        assert_eq!(env["APIARY_URL"], "http://127.0.0.1:7878");
        assert_eq!(env["APIARY_SPEC_RUN_TIMEOUT"], "90");
        assert_eq!(env["APIARY_IMPL_RUN_TIMEOUT"], "900");
        assert_eq!(env["APIARY_AGENT_COMMAND"], "./agent.sh");
        assert_eq!(env["APIARY_ORPHAN_S"], "1800");
        assert_eq!(env["APIARY_EGRESS_ALLOW"], "pypi.org");
        assert_eq!(env["APIARY_GATEWAY_TOKEN"], "gw");
        assert_eq!(env["APIARY_AGENT_MODEL"], "claude-haiku-4-5");
        assert_eq!(
            env["APIARY_AGENT_ENV"],
            r#"{"NODE_OPTIONS":"--max-old-space-size=4096"}"#
        );
        for k in [
            "APIARY_TASK_ID",
            "APIARY_CALLBACK_TOKEN",
            "APIARY_CONTROL_TOKEN",
            "APIARY_REPO_URL",
            "APIARY_BASE_BRANCH",
            "APIARY_BRANCH",
            "APIARY_FORGE",
            "APIARY_AGENT",
        ] {
            assert!(env.contains_key(k), "{k}");
        }
    }

    #[test]
    fn the_agent_may_reach_apiary_and_its_git_host_besides_the_admins_list() {
        let admin = vec!["pypi.org".to_string()];
        assert_eq!(
            egress_allow(
                &admin,
                "http://127.0.0.1:7878",
                "https://x:tok@GitHub.com/a/b.git"
            ),
            vec!["127.0.0.1:7878", "github.com:443", "pypi.org"]
        );
        assert_eq!(
            egress_allow(
                &admin,
                "https://apiary.example",
                "git@gitlab.example:a/b.git"
            ),
            vec!["apiary.example:443", "gitlab.example:22", "pypi.org"]
        );
        // A forge on the host's loopback opens its own port, not every port of the host.
        assert_eq!(
            egress_allow(
                &[],
                "http://127.0.0.1:7878",
                "http://127.0.0.1:3000/a/b.git"
            ),
            vec!["127.0.0.1:3000", "127.0.0.1:7878"]
        );
        assert_eq!(
            egress_allow(&[], "http://127.0.0.1:7878", "/srv/repos/site.git"),
            vec!["127.0.0.1:7878"]
        );
    }
}
