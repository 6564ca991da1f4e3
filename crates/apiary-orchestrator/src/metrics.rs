//! Prometheus counters shared by the worker and the HTTP layer, rendered at `/metrics`.

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

/// Labels of an HTTP request counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub method: String,
    pub status: u16,
}

/// Labels of a job counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JobLabels {
    pub kind: String,
    pub outcome: String,
}

/// Labels of the watchdog's action counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WatchdogLabels {
    pub action: String,
}

/// Labels of the model gateway's counters: the project, the model, and the token kind
/// (`input`, `output`, `cache_read`, `cache_write`) or `usd_micros` for cost.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModelLabels {
    pub project: String,
    pub model: String,
    pub kind: String,
}

/// Every counter Apiary exports.
pub struct Metrics {
    registry: Registry,
    pub http_requests: Family<HttpLabels, Counter>,
    pub jobs: Family<JobLabels, Counter>,
    pub transitions: Counter,
    pub watchdog: Family<WatchdogLabels, Counter>,
    pub watchdog_passes: Counter,
    pub model_tokens: Family<ModelLabels, Counter>,
    pub model_cost_micros: Family<ModelLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("apiary");
        let http_requests = Family::<HttpLabels, Counter>::default();
        let jobs = Family::<JobLabels, Counter>::default();
        let transitions = Counter::default();
        registry.register(
            "http_requests",
            "HTTP requests answered",
            http_requests.clone(),
        );
        registry.register("jobs", "Job runs by kind and outcome", jobs.clone());
        registry.register(
            "transitions",
            "Committed agent status transitions",
            transitions.clone(),
        );
        let watchdog = Family::<WatchdogLabels, Counter>::default();
        let watchdog_passes = Counter::default();
        registry.register(
            "watchdog_actions",
            "What watchdog passes did",
            watchdog.clone(),
        );
        registry.register(
            "watchdog_passes",
            "Watchdog passes run",
            watchdog_passes.clone(),
        );
        let model_tokens = Family::<ModelLabels, Counter>::default();
        let model_cost_micros = Family::<ModelLabels, Counter>::default();
        registry.register(
            "model_tokens",
            "Tokens metered by the model gateway, by project, model and kind",
            model_tokens.clone(),
        );
        registry.register(
            "model_cost_micros",
            "Cost metered by the model gateway in millionths of a US dollar, by project and model",
            model_cost_micros.clone(),
        );
        Metrics {
            model_tokens,
            model_cost_micros,
            registry,
            http_requests,
            jobs,
            transitions,
            watchdog,
            watchdog_passes,
        }
    }
}

impl Metrics {
    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = encode(&mut out, &self.registry);
        out
    }
}
