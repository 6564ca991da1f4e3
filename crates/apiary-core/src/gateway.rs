//! The model gateway's pure part (DESIGN §9): which provider a preset talks to, the usage a
//! provider reports in a body or a stream, what it costs, and the budget and stall verdicts.
//! The HTTP forwarding lives in the server; nothing here does IO.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A model provider the gateway forwards to. An OpenAI-compatible server (vLLM, Ollama, …)
/// is the `openai` provider with its own base URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Provider {
    Anthropic,
    OpenAi,
    Gemini,
}

impl Provider {
    pub const ALL: [Provider; 3] = [Provider::Anthropic, Provider::OpenAi, Provider::Gemini];

    /// The name in gateway paths (`/gateway/<name>/…`), settings and secrets.
    pub fn name(self) -> &'static str {
        match self {
            Provider::Anthropic => "anthropic",
            Provider::OpenAi => "openai",
            Provider::Gemini => "gemini",
        }
    }

    /// What people call it, in messages.
    pub fn label(self) -> &'static str {
        match self {
            Provider::Anthropic => "Anthropic",
            Provider::OpenAi => "OpenAI",
            Provider::Gemini => "Google Gemini",
        }
    }

    pub fn from_name(name: &str) -> Option<Provider> {
        Provider::ALL.into_iter().find(|p| p.name() == name)
    }

    /// The provider's public API origin (paths after `/gateway/<name>` are appended as sent).
    pub fn default_base(self) -> &'static str {
        match self {
            Provider::Anthropic => "https://api.anthropic.com",
            Provider::OpenAi => "https://api.openai.com",
            Provider::Gemini => "https://generativelanguage.googleapis.com",
        }
    }
}

/// The presets and the model each uses unless a project or the admin says otherwise.
pub const DEFAULT_MODELS: [(&str, &str); 5] = [
    ("claude-code", "claude-sonnet-4-5"),
    ("codex", "gpt-5-codex"),
    ("aider", "gpt-5"),
    ("opencode", "gpt-5"),
    ("gemini", "gemini-2.5-pro"),
];

/// The price of a model in US dollars per million tokens. `model` matches a requested model
/// exactly or as a prefix (`claude-sonnet-4-5` prices `claude-sonnet-4-5-20250929`); `*`
/// prices every model no other entry names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Price {
    pub model: String,
    pub input: f64,
    pub output: f64,
    #[serde(default)]
    pub cache_read: f64,
    #[serde(default)]
    pub cache_write: f64,
}

/// Published list prices of the three providers' current models (per million tokens), and a
/// catch-all so that an unknown model is never free: an admin prices a self-hosted model at
/// zero by naming it.
pub fn default_prices() -> Vec<Price> {
    let p = |model: &str, input, output, cache_read, cache_write| Price {
        model: model.into(),
        input,
        output,
        cache_read,
        cache_write,
    };
    vec![
        p("claude-opus-4", 15.0, 75.0, 1.5, 18.75),
        p("claude-sonnet-4", 3.0, 15.0, 0.3, 3.75),
        p("claude-haiku-4", 1.0, 5.0, 0.1, 1.25),
        p("claude-3-5-haiku", 0.8, 4.0, 0.08, 1.0),
        p("gpt-5-mini", 0.25, 2.0, 0.025, 0.0),
        p("gpt-5-nano", 0.05, 0.4, 0.005, 0.0),
        p("gpt-5", 1.25, 10.0, 0.125, 0.0),
        p("gpt-4.1-mini", 0.4, 1.6, 0.1, 0.0),
        p("gpt-4.1", 2.0, 8.0, 0.5, 0.0),
        p("o4-mini", 1.1, 4.4, 0.275, 0.0),
        p("gemini-2.5-pro", 1.25, 10.0, 0.31, 0.0),
        p("gemini-2.5-flash-lite", 0.1, 0.4, 0.025, 0.0),
        p("gemini-2.5-flash", 0.3, 2.5, 0.075, 0.0),
        p("*", 3.0, 15.0, 0.3, 3.75),
    ]
}

/// The entry that prices `model`: an exact name, else the longest prefix, else `*`.
pub fn price_of<'a>(prices: &'a [Price], model: &str) -> Option<&'a Price> {
    prices
        .iter()
        .find(|p| p.model == model)
        .or_else(|| {
            prices
                .iter()
                .filter(|p| p.model != "*" && model.starts_with(&p.model))
                .max_by_key(|p| p.model.len())
        })
        .or_else(|| prices.iter().find(|p| p.model == "*"))
}

/// Tokens of one model request, as the provider reported them. `input` excludes cached
/// tokens (read or written), so each kind is priced once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Usage {
    pub input: u64,
    pub output: u64,
    pub cache_read: u64,
    pub cache_write: u64,
}

impl Usage {
    /// Cost in millionths of a US dollar (integers add up exactly).
    pub fn cost_micros(&self, price: Option<&Price>) -> u64 {
        let Some(p) = price else { return 0 };
        let part = |tokens: u64, per_mtok: f64| tokens as f64 * per_mtok.max(0.0);
        // tokens × $/Mtok = µ$.
        (part(self.input, p.input)
            + part(self.output, p.output)
            + part(self.cache_read, p.cache_read)
            + part(self.cache_write, p.cache_write))
        .round() as u64
    }

    pub fn total(&self) -> u64 {
        self.input + self.output + self.cache_read + self.cache_write
    }
}

/// Reads usage out of what a provider sends: a whole JSON answer, or each `data:` event of a
/// stream, fed in order. Providers repeat or grow their counts along a stream (Anthropic's
/// `message_start` then `message_delta`, Gemini's running `usageMetadata`, OpenAI's last chunk
/// or `response.completed`), so each count keeps its largest value.
#[derive(Debug, Clone, Default)]
pub struct UsageMeter {
    provider: Option<Provider>,
    /// The totals as reported (OpenAI and Gemini count cached tokens inside the input).
    input_reported: u64,
    output: u64,
    cache_read: u64,
    cache_write: u64,
    /// The model the provider says answered (else the one asked for).
    pub model: Option<String>,
}

impl UsageMeter {
    pub fn new(provider: Provider) -> Self {
        UsageMeter {
            provider: Some(provider),
            ..Default::default()
        }
    }

    /// Takes one JSON value (a body or an event's data). An array (Gemini's streamed answer
    /// without `alt=sse`) is read element by element.
    pub fn feed(&mut self, v: &Value) {
        if let Some(items) = v.as_array() {
            for item in items {
                self.feed(item);
            }
            return;
        }
        let n = |v: &Value, key: &str| v.get(key).and_then(Value::as_u64).unwrap_or(0);
        let model = v
            .get("model")
            .or_else(|| v.pointer("/message/model"))
            .or_else(|| v.pointer("/response/model"))
            .or_else(|| v.get("modelVersion"))
            .and_then(Value::as_str);
        if let Some(m) = model.filter(|m| !m.is_empty()) {
            self.model = Some(m.to_string());
        }
        match self.provider {
            Some(Provider::Anthropic) => {
                for usage in [v.get("usage"), v.pointer("/message/usage")]
                    .into_iter()
                    .flatten()
                {
                    self.input_reported = self.input_reported.max(n(usage, "input_tokens"));
                    self.output = self.output.max(n(usage, "output_tokens"));
                    self.cache_read = self.cache_read.max(n(usage, "cache_read_input_tokens"));
                    self.cache_write = self
                        .cache_write
                        .max(n(usage, "cache_creation_input_tokens"));
                }
            }
            Some(Provider::OpenAi) => {
                // Chat Completions (`usage` of a body or the last chunk) and Responses (a
                // body's `usage`, or `response.usage` of `response.completed`).
                for usage in [v.get("usage"), v.pointer("/response/usage")]
                    .into_iter()
                    .flatten()
                    .filter(|u| u.is_object())
                {
                    let input = n(usage, "prompt_tokens").max(n(usage, "input_tokens"));
                    let output = n(usage, "completion_tokens").max(n(usage, "output_tokens"));
                    let cached = usage
                        .pointer("/prompt_tokens_details/cached_tokens")
                        .or_else(|| usage.pointer("/input_tokens_details/cached_tokens"))
                        .and_then(Value::as_u64)
                        .unwrap_or(0);
                    let written = usage
                        .pointer("/input_tokens_details/cache_write_tokens")
                        .and_then(Value::as_u64)
                        .unwrap_or(0);
                    self.input_reported = self.input_reported.max(input);
                    self.output = self.output.max(output);
                    self.cache_read = self.cache_read.max(cached);
                    self.cache_write = self.cache_write.max(written);
                }
            }
            Some(Provider::Gemini) => {
                if let Some(usage) = v.get("usageMetadata") {
                    self.input_reported = self.input_reported.max(n(usage, "promptTokenCount"));
                    self.output = self
                        .output
                        .max(n(usage, "candidatesTokenCount") + n(usage, "thoughtsTokenCount"));
                    self.cache_read = self.cache_read.max(n(usage, "cachedContentTokenCount"));
                }
            }
            None => {}
        }
    }

    /// The usage so far, each token kind counted once.
    pub fn usage(&self) -> Usage {
        let input = match self.provider {
            // Anthropic's input_tokens already excludes the cache.
            Some(Provider::Anthropic) | None => self.input_reported,
            // OpenAI and Gemini count cached (and OpenAI cache-written) tokens in the input.
            Some(Provider::OpenAi) | Some(Provider::Gemini) => self
                .input_reported
                .saturating_sub(self.cache_read)
                .saturating_sub(self.cache_write),
        };
        Usage {
            input,
            output: self.output,
            cache_read: self.cache_read,
            cache_write: self.cache_write,
        }
    }
}

/// Splits a byte stream into server-sent-event `data:` payloads, across chunk boundaries. A
/// line longer than `max_line` is skipped (it is still forwarded; only metering ignores it).
#[derive(Debug)]
pub struct SseLines {
    buf: Vec<u8>,
    max_line: usize,
    overflow: bool,
}

impl SseLines {
    pub fn new(max_line: usize) -> Self {
        SseLines {
            buf: Vec::new(),
            max_line,
            overflow: false,
        }
    }

    /// Feeds a chunk; calls `data` with each complete `data:` payload.
    pub fn push(&mut self, chunk: &[u8], mut data: impl FnMut(&str)) {
        let mut rest = chunk;
        while let Some(i) = rest.iter().position(|b| *b == b'\n') {
            if !self.overflow && self.buf.len() + i <= self.max_line {
                self.buf.extend_from_slice(&rest[..i]);
                let line = String::from_utf8_lossy(&self.buf);
                let line = line.trim_end_matches('\r');
                if let Some(payload) = line.strip_prefix("data:") {
                    data(payload.trim_start());
                }
            }
            self.buf.clear();
            self.overflow = false;
            rest = &rest[i + 1..];
        }
        if !self.overflow {
            if self.buf.len() + rest.len() > self.max_line {
                self.overflow = true;
                self.buf.clear();
            } else {
                self.buf.extend_from_slice(rest);
            }
        }
    }
}

/// Millionths of a dollar as `$1.23` (cents, or more digits below a cent).
pub fn dollars(micros: u64) -> String {
    if micros == 0 {
        "$0".into()
    } else if micros < 10_000 {
        format!("${:.4}", micros as f64 / 1e6)
    } else {
        format!("${:.2}", micros as f64 / 1e6)
    }
}

/// A budget that `spent` has reached: the error the task fails with.
pub fn budget_error(what: &str, budget_usd: f64, spent_micros: u64) -> Option<String> {
    let budget = usd_to_micros(budget_usd);
    (budget > 0 && spent_micros >= budget).then(|| {
        format!(
            "{what} of {} reached ({} spent)",
            dollars(budget),
            dollars(spent_micros)
        )
    })
}

/// Dollars as millionths (negative and not-a-number as zero).
pub fn usd_to_micros(usd: f64) -> u64 {
    if usd.is_finite() && usd > 0.0 {
        (usd * 1e6).round() as u64
    } else {
        0
    }
}

/// Whether `m` may name a model: the characters model names use, nothing a shell or a URL
/// would read otherwise (a preset passes it on a command line and in a path).
pub fn is_model_name(m: &str) -> bool {
    m.len() <= 200
        && m.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':' | '/' | '@'))
}

/// A project's own gateway settings: each blank or absent value falls through to the global
/// one (provider keys, stored apart as secrets, do the same).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProjectGateway {
    /// The model of the project's preset.
    pub model: String,
    /// Plain environment variables added to (and winning over) the global ones.
    pub agent_env: std::collections::BTreeMap<String, String>,
    /// The project's per-task budget in US dollars (`None`: the global one; 0: no limit).
    pub task_budget_usd: Option<f64>,
    /// The project's monthly budget (`None`: the global one; 0: no limit).
    pub month_budget_usd: Option<f64>,
}

impl ProjectGateway {
    /// Checks the values; the error names the field.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if !is_model_name(&self.model) {
            return Err((
                "agent.gateway.model",
                "a model name (letters, digits and . _ - : / @), at most 200 characters".into(),
            ));
        }
        check_agent_env(&self.agent_env).map_err(|e| ("agent.gateway.agent_env", e))?;
        for (field, v) in [
            ("agent.gateway.task_budget_usd", self.task_budget_usd),
            ("agent.gateway.month_budget_usd", self.month_budget_usd),
        ] {
            if let Some(v) = v {
                if !v.is_finite() || !(0.0..=1_000_000.0).contains(&v) {
                    return Err((field, "must be 0 (no limit) to 1000000 dollars".into()));
                }
            }
        }
        Ok(())
    }
}

/// Checks a price table an admin saves; the error names the field.
pub fn check_prices(prices: &[Price]) -> Result<(), String> {
    if prices.len() > 500 {
        return Err("at most 500 prices".into());
    }
    for p in prices {
        if p.model.trim().is_empty() || p.model.len() > 200 {
            return Err("each price needs a model name (at most 200 characters)".into());
        }
        for v in [p.input, p.output, p.cache_read, p.cache_write] {
            if !v.is_finite() || !(0.0..=100_000.0).contains(&v) {
                return Err(format!(
                    "{}: prices are dollars per million tokens, 0 to 100000",
                    p.model
                ));
            }
        }
    }
    Ok(())
}

/// Checks the plain environment variables an admin or project gives the agent: names that
/// the shell accepts, nothing that could take over the box's own variables or the gateway's.
pub fn check_agent_env(env: &std::collections::BTreeMap<String, String>) -> Result<(), String> {
    if env.len() > 100 {
        return Err("at most 100 variables".into());
    }
    // The CLIs' own tuning (`AIDER_TEST_CMD`, `CLAUDE_CODE_…`) is allowed; what points a CLI
    // elsewhere or carries a key is not.
    const RESERVED: [&str; 16] = [
        "APIARY_",
        "AIDER_OPENAI_",
        "AIDER_ANTHROPIC_",
        "AIDER_API_KEY",
        "ANTHROPIC_",
        "OPENAI_",
        "GEMINI_",
        "GOOGLE_",
        "OPENCODE_",
        "CODEX_",
        "PATH",
        "HOME",
        "TMPDIR",
        "LD_",
        "HTTP_PROXY",
        "HTTPS_PROXY",
    ];
    for (name, value) in env {
        let shell_name = !name.is_empty()
            && name.len() <= 100
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !shell_name {
            return Err(format!("{name:?} is not a variable name"));
        }
        let upper = name.to_ascii_uppercase();
        if let Some(r) = RESERVED.iter().find(|r| upper.starts_with(*r)) {
            return Err(format!(
                "{name}: variables starting with {r} are set by Apiary"
            ));
        }
        if upper.ends_with("_PROXY") || value.len() > 4096 || value.contains('\0') {
            return Err(format!(
                "{name}: not allowed (proxy variables, values over 4096 bytes or with NUL)"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn anthropic_streams_count_input_at_start_and_output_at_the_end() {
        let mut m = UsageMeter::new(Provider::Anthropic);
        m.feed(
            &json!({"type": "message_start", "message": {"model": "claude-sonnet-4-5-20250929",
            "usage": {"input_tokens": 1200, "output_tokens": 1, "cache_read_input_tokens": 300,
                      "cache_creation_input_tokens": 50}}}),
        );
        m.feed(&json!({"type": "content_block_delta", "delta": {"text": "hi"}}));
        m.feed(&json!({"type": "message_delta", "usage": {"output_tokens": 87}}));
        assert_eq!(
            m.usage(),
            Usage {
                input: 1200,
                output: 87,
                cache_read: 300,
                cache_write: 50
            }
        );
        assert_eq!(m.model.as_deref(), Some("claude-sonnet-4-5-20250929"));
    }

    #[test]
    fn openai_and_gemini_count_cached_tokens_once() {
        let mut chat = UsageMeter::new(Provider::OpenAi);
        chat.feed(&json!({"choices": [], "usage": null}));
        chat.feed(
            &json!({"model": "gpt-5", "usage": {"prompt_tokens": 1000, "completion_tokens": 20,
            "prompt_tokens_details": {"cached_tokens": 400}}}),
        );
        assert_eq!(chat.usage().input, 600);
        assert_eq!(chat.usage().cache_read, 400);
        let mut responses = UsageMeter::new(Provider::OpenAi);
        responses.feed(
            &json!({"type": "response.completed", "response": {"model": "gpt-5-codex",
            "usage": {"input_tokens": 50, "output_tokens": 7,
                      "input_tokens_details": {"cached_tokens": 10, "cache_write_tokens": 5}}}}),
        );
        assert_eq!(
            responses.usage(),
            Usage {
                input: 35,
                output: 7,
                cache_read: 10,
                cache_write: 5
            }
        );
        let mut gemini = UsageMeter::new(Provider::Gemini);
        gemini.feed(&json!({"usageMetadata": {"promptTokenCount": 90, "candidatesTokenCount": 3}}));
        gemini.feed(
            &json!({"modelVersion": "gemini-2.5-pro", "usageMetadata": {"promptTokenCount": 90,
            "candidatesTokenCount": 12, "thoughtsTokenCount": 5, "cachedContentTokenCount": 30}}),
        );
        assert_eq!(
            gemini.usage(),
            Usage {
                input: 60,
                output: 17,
                cache_read: 30,
                cache_write: 0
            }
        );
    }

    #[test]
    fn prices_match_exactly_then_by_longest_prefix_then_the_catch_all() {
        let prices = default_prices();
        assert_eq!(
            price_of(&prices, "gpt-5-mini-2025").unwrap().model,
            "gpt-5-mini"
        );
        assert_eq!(price_of(&prices, "gpt-5-codex").unwrap().model, "gpt-5");
        assert_eq!(price_of(&prices, "my-llama").unwrap().model, "*");
        let u = Usage {
            input: 1_000_000,
            output: 100_000,
            cache_read: 0,
            cache_write: 0,
        };
        // $3 + 0.1 × $15 = $4.50
        assert_eq!(
            u.cost_micros(price_of(&prices, "claude-sonnet-4-5")),
            4_500_000
        );
        assert_eq!(u.cost_micros(None), 0);
        assert!(check_prices(&prices).is_ok());
        let mut bad = prices.clone();
        bad[0].input = f64::NAN;
        assert!(check_prices(&bad).unwrap_err().contains("claude-opus-4"));
    }

    #[test]
    fn budgets_name_the_limit_and_the_spending() {
        assert_eq!(budget_error("budget", 0.0, 5_000_000), None);
        assert_eq!(budget_error("budget", 0.01, 9_999), None);
        assert_eq!(
            budget_error("budget", 0.01, 52_500).unwrap(),
            "budget of $0.01 reached ($0.05 spent)"
        );
        assert_eq!(dollars(1234), "$0.0012");
    }

    #[test]
    fn sse_payloads_survive_any_chunking_and_long_lines_are_skipped() {
        let stream = b"event: a\ndata: {\"x\":1}\r\n\ndata: {\"x\":2}\n\n: comment\ndata: long-long-long\ndata: end\n";
        for size in 1..stream.len() {
            let mut got = Vec::new();
            let mut lines = SseLines::new(16);
            for chunk in stream.chunks(size) {
                lines.push(chunk, |d| got.push(d.to_string()));
            }
            assert_eq!(got, ["{\"x\":1}", "{\"x\":2}", "end"], "chunks of {size}");
        }
    }

    #[test]
    fn agent_env_refuses_names_apiary_or_the_clis_own() {
        let env = |k: &str| std::collections::BTreeMap::from([(k.to_string(), "v".to_string())]);
        assert!(check_agent_env(&env("NODE_OPTIONS")).is_ok());
        for bad in [
            "APIARY_URL",
            "ANTHROPIC_BASE_URL",
            "openai_api_key",
            "LD_PRELOAD",
            "no_proxy",
            "1X",
            "A-B",
        ] {
            assert!(check_agent_env(&env(bad)).is_err(), "{bad}");
        }
    }
}
