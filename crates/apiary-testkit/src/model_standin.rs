//! A stand-in model provider on loopback, for the gateway and the real agent CLIs: it speaks
//! the Anthropic Messages API, OpenAI's Chat Completions and Responses APIs and the Gemini
//! API (each streamed and not), plays a script (tool calls, then a final answer), reports a
//! fixed usage per answer, and records every request it got.

use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};

/// The API family a request came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    Anthropic,
    Chat,
    Responses,
    Gemini,
}

/// What the stand-in answers next.
#[derive(Debug, Clone)]
pub enum Step {
    /// A tool call, named and with arguments as the CLI's own tool expects them.
    Tool { name: String, args: Value },
    /// A final text answer that ends the turn.
    Text(String),
}

/// Decides the next answer from the request (its API, its body, and how many tool results
/// the conversation holds so far).
pub type Script = Arc<dyn Fn(Api, &Value, usize) -> Step + Send + Sync>;

/// One request as the stand-in got it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub api: Api,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Value,
}

/// Usage reported per answer (input excludes cache, as Anthropic counts it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Reported {
    pub input: u64,
    pub output: u64,
    pub cache_read: u64,
    pub cache_write: u64,
}

#[derive(Default)]
struct Inner {
    requests: Vec<Recorded>,
    /// Everything reported so far, summed.
    total: Reported,
    answers: u64,
}

/// A running stand-in.
#[derive(Clone)]
pub struct ModelStandin {
    /// `http://127.0.0.1:PORT`: the base to give the gateway for every provider.
    pub base: String,
    inner: Arc<Mutex<Inner>>,
    /// While set, a streamed answer sends its first event, then waits for this before the rest.
    pub hold: Arc<Mutex<Option<Arc<tokio::sync::Notify>>>>,
    pub per_answer: Arc<Mutex<Reported>>,
}

#[derive(Clone)]
struct Ctx {
    script: Script,
    standin: ModelStandin,
}

impl ModelStandin {
    /// Starts a stand-in playing `script`, each answer reporting `per_answer`.
    pub async fn start(script: Script, per_answer: Reported) -> ModelStandin {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let standin = ModelStandin {
            base: format!("http://{}", listener.local_addr().unwrap()),
            inner: Arc::default(),
            hold: Arc::default(),
            per_answer: Arc::new(Mutex::new(per_answer)),
        };
        let ctx = Ctx {
            script,
            standin: standin.clone(),
        };
        let app = Router::new()
            .route("/v1/messages", post(anthropic))
            .route("/v1/chat/completions", post(chat))
            .route("/chat/completions", post(chat))
            .route("/v1/responses", post(responses))
            .route("/responses", post(responses))
            .route("/v1beta/models/{action}", post(gemini))
            .route("/v1/models/{action}", post(gemini))
            .fallback(|uri: axum::http::Uri| async move {
                (StatusCode::NOT_FOUND, format!("stand-in: no route {uri}"))
            })
            .with_state(ctx);
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        standin
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.inner.lock().unwrap().requests.clone()
    }

    /// All usage reported so far.
    pub fn reported(&self) -> Reported {
        self.inner.lock().unwrap().total
    }

    /// How many answers were given.
    pub fn answers(&self) -> u64 {
        self.inner.lock().unwrap().answers
    }

    fn record(&self, api: Api, path: &str, headers: &HeaderMap, body: &Value) -> Reported {
        let per = *self.per_answer.lock().unwrap();
        let mut inner = self.inner.lock().unwrap();
        inner.requests.push(Recorded {
            api,
            path: path.to_string(),
            headers: headers.clone(),
            body: body.clone(),
        });
        inner.total.input += per.input;
        inner.total.output += per.output;
        inner.total.cache_read += per.cache_read;
        inner.total.cache_write += per.cache_write;
        inner.answers += 1;
        per
    }
}

/// Tool results in a conversation, as each API carries them.
pub fn tool_results(api: Api, body: &Value) -> usize {
    let arr = |v: Option<&Value>| v.and_then(Value::as_array).cloned().unwrap_or_default();
    match api {
        Api::Anthropic => arr(body.get("messages"))
            .iter()
            .flat_map(|m| arr(m.get("content")))
            .filter(|c| c["type"] == "tool_result")
            .count(),
        Api::Chat => arr(body.get("messages"))
            .iter()
            .filter(|m| m["role"] == "tool")
            .count(),
        Api::Responses => arr(body.get("input"))
            .iter()
            .filter(|i| {
                i["type"]
                    .as_str()
                    .is_some_and(|t| t.ends_with("call_output"))
            })
            .count(),
        Api::Gemini => arr(body.get("contents"))
            .iter()
            .flat_map(|c| arr(c.get("parts")))
            .filter(|p| p.get("functionResponse").is_some())
            .count(),
    }
}

/// All the text of a request (system prompt and messages), to tell phases apart.
pub fn request_text(body: &Value) -> String {
    let mut out = String::new();
    fn walk(v: &Value, out: &mut String) {
        match v {
            Value::String(s) => {
                out.push_str(s);
                out.push('\n');
            }
            Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            Value::Object(o) => o.values().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    for key in [
        "system",
        "messages",
        "input",
        "instructions",
        "contents",
        "systemInstruction",
    ] {
        if let Some(v) = body.get(key) {
            walk(v, &mut out);
        }
    }
    out
}

/// A body of server-sent events, held after the first while the stand-in's `hold` is set.
fn sse(standin: &ModelStandin, events: Vec<String>) -> Response {
    let hold = standin.hold.lock().unwrap().clone();
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(64);
    tokio::spawn(async move {
        for (i, e) in events.into_iter().enumerate() {
            if i == 1 {
                if let Some(h) = &hold {
                    h.notified().await;
                }
            }
            if tx.send(Ok(Bytes::from(e))).await.is_err() {
                return;
            }
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(Body::from_stream(stream))
        .unwrap()
}

fn event(name: Option<&str>, data: &Value) -> String {
    match name {
        Some(n) => format!("event: {n}\ndata: {data}\n\n"),
        None => format!("data: {data}\n\n"),
    }
}

fn next_step(ctx: &Ctx, api: Api, body: &Value) -> Step {
    (ctx.script)(api, body, tool_results(api, body))
}

async fn anthropic(State(ctx): State<Ctx>, headers: HeaderMap, body: Bytes) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let u = ctx
        .standin
        .record(Api::Anthropic, "/v1/messages", &headers, &body);
    let model = body["model"]
        .as_str()
        .unwrap_or("claude-sonnet-4-5")
        .to_string();
    let step = next_step(&ctx, Api::Anthropic, &body);
    let n = ctx.standin.answers();
    let (block, stop) = match &step {
        Step::Tool { name, args } => (
            json!({"type": "tool_use", "id": format!("toolu_{n:04}"), "name": name, "input": args}),
            "tool_use",
        ),
        Step::Text(t) => (json!({"type": "text", "text": t}), "end_turn"),
    };
    let usage = json!({"input_tokens": u.input, "output_tokens": u.output,
        "cache_read_input_tokens": u.cache_read, "cache_creation_input_tokens": u.cache_write});
    if body["stream"] != json!(true) {
        return axum::Json(
            json!({"id": format!("msg_{n:04}"), "type": "message", "role": "assistant",
            "model": model, "content": [block], "stop_reason": stop, "stop_sequence": null,
            "usage": usage}),
        )
        .into_response();
    }
    let start_usage = json!({"input_tokens": u.input, "output_tokens": 1,
        "cache_read_input_tokens": u.cache_read, "cache_creation_input_tokens": u.cache_write});
    let mut events = vec![event(
        Some("message_start"),
        &json!({"type": "message_start", "message": {"id": format!("msg_{n:04}"), "type": "message",
            "role": "assistant", "model": model, "content": [], "stop_reason": null,
            "stop_sequence": null, "usage": start_usage}}),
    )];
    match &step {
        Step::Tool { args, .. } => {
            let mut empty = block.clone();
            empty["input"] = json!({});
            events.push(event(
                Some("content_block_start"),
                &json!({"type": "content_block_start", "index": 0, "content_block": empty}),
            ));
            events.push(event(
                Some("content_block_delta"),
                &json!({"type": "content_block_delta", "index": 0,
                    "delta": {"type": "input_json_delta", "partial_json": args.to_string()}}),
            ));
        }
        Step::Text(t) => {
            events.push(event(
                Some("content_block_start"),
                &json!({"type": "content_block_start", "index": 0,
                    "content_block": {"type": "text", "text": ""}}),
            ));
            events.push(event(
                Some("content_block_delta"),
                &json!({"type": "content_block_delta", "index": 0,
                    "delta": {"type": "text_delta", "text": t}}),
            ));
        }
    }
    events.push(event(
        Some("content_block_stop"),
        &json!({"type": "content_block_stop", "index": 0}),
    ));
    events.push(event(
        Some("message_delta"),
        &json!({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": null},
            "usage": {"output_tokens": u.output}}),
    ));
    events.push(event(
        Some("message_stop"),
        &json!({"type": "message_stop"}),
    ));
    sse(&ctx.standin, events)
}

async fn chat(State(ctx): State<Ctx>, headers: HeaderMap, body: Bytes) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let u = ctx
        .standin
        .record(Api::Chat, "/v1/chat/completions", &headers, &body);
    let model = body["model"].as_str().unwrap_or("gpt-5").to_string();
    let step = next_step(&ctx, Api::Chat, &body);
    let n = ctx.standin.answers();
    let usage = json!({"prompt_tokens": u.input + u.cache_read, "completion_tokens": u.output,
        "total_tokens": u.input + u.cache_read + u.output,
        "prompt_tokens_details": {"cached_tokens": u.cache_read}});
    let (message, finish) = match &step {
        Step::Tool { name, args } => (
            json!({"role": "assistant", "content": null, "tool_calls": [{"id": format!("call_{n:04}"),
                "type": "function", "function": {"name": name, "arguments": args.to_string()}}]}),
            "tool_calls",
        ),
        Step::Text(t) => (json!({"role": "assistant", "content": t}), "stop"),
    };
    let id = format!("chatcmpl-{n:04}");
    if body["stream"] != json!(true) {
        return axum::Json(
            json!({"id": id, "object": "chat.completion", "created": 1_700_000_000,
            "model": model, "choices": [{"index": 0, "message": message, "finish_reason": finish,
            "logprobs": null}], "usage": usage}),
        )
        .into_response();
    }
    let chunk = |delta: Value, finish: Value| {
        event(
            None,
            &json!({"id": id, "object": "chat.completion.chunk", "created": 1_700_000_000,
                "model": model, "choices": [{"index": 0, "delta": delta, "finish_reason": finish,
                "logprobs": null}]}),
        )
    };
    let mut events = vec![chunk(
        json!({"role": "assistant", "content": ""}),
        Value::Null,
    )];
    match &step {
        Step::Tool { name, args } => events.push(chunk(
            json!({"tool_calls": [{"index": 0, "id": format!("call_{n:04}"), "type": "function",
                "function": {"name": name, "arguments": args.to_string()}}]}),
            Value::Null,
        )),
        Step::Text(t) => events.push(chunk(json!({"content": t}), Value::Null)),
    }
    events.push(chunk(json!({}), json!(finish)));
    // Usage comes in a last chunk only when the client asked for it, as OpenAI does.
    if body["stream_options"]["include_usage"] == json!(true) {
        events.push(event(
            None,
            &json!({"id": id, "object": "chat.completion.chunk", "created": 1_700_000_000,
                "model": model, "choices": [], "usage": usage}),
        ));
    }
    events.push("data: [DONE]\n\n".to_string());
    sse(&ctx.standin, events)
}

async fn responses(State(ctx): State<Ctx>, headers: HeaderMap, body: Bytes) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let u = ctx
        .standin
        .record(Api::Responses, "/v1/responses", &headers, &body);
    let model = body["model"].as_str().unwrap_or("gpt-5-codex").to_string();
    let step = next_step(&ctx, Api::Responses, &body);
    let n = ctx.standin.answers();
    let item = match &step {
        Step::Tool { name, args } => json!({"type": "function_call", "id": format!("fc_{n:04}"),
            "call_id": format!("call_{n:04}"), "name": name, "arguments": args.to_string(),
            "status": "completed"}),
        Step::Text(t) => {
            json!({"type": "message", "id": format!("msg_{n:04}"), "role": "assistant",
            "status": "completed", "content": [{"type": "output_text", "text": t, "annotations": []}]})
        }
    };
    let usage = json!({"input_tokens": u.input + u.cache_read + u.cache_write, "output_tokens": u.output,
        "total_tokens": u.input + u.cache_read + u.cache_write + u.output,
        "input_tokens_details": {"cached_tokens": u.cache_read, "cache_write_tokens": u.cache_write},
        "output_tokens_details": {"reasoning_tokens": 0}});
    let id = format!("resp_{n:04}");
    let response = |status: &str, output: Value, usage: Value| {
        json!({"id": id, "object": "response", "created_at": 1_700_000_000, "status": status,
            "model": model, "output": output, "usage": usage, "error": null,
            "incomplete_details": null, "parallel_tool_calls": true, "tool_choice": "auto", "tools": []})
    };
    if body["stream"] != json!(true) {
        return axum::Json(response("completed", json!([item]), usage)).into_response();
    }
    let mut events = vec![
        event(
            Some("response.created"),
            &json!({"type": "response.created", "sequence_number": 0,
                "response": response("in_progress", json!([]), Value::Null)}),
        ),
        event(
            Some("response.output_item.added"),
            &json!({"type": "response.output_item.added", "sequence_number": 1, "output_index": 0,
                "item": item}),
        ),
    ];
    if let Step::Text(t) = &step {
        events.push(event(
            Some("response.output_text.delta"),
            &json!({"type": "response.output_text.delta", "sequence_number": 2,
                "item_id": format!("msg_{n:04}"), "output_index": 0, "content_index": 0, "delta": t,
                "logprobs": []}),
        ));
    }
    events.push(event(
        Some("response.output_item.done"),
        &json!({"type": "response.output_item.done", "sequence_number": 3, "output_index": 0,
            "item": item}),
    ));
    events.push(event(
        Some("response.completed"),
        &json!({"type": "response.completed", "sequence_number": 4,
            "response": response("completed", json!([item]), usage)}),
    ));
    sse(&ctx.standin, events)
}

async fn gemini(
    State(ctx): State<Ctx>,
    Path(action): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let path = format!("/v1beta/models/{action}");
    let (model, method) = action.split_once(':').unwrap_or((&action, ""));
    if method == "countTokens" {
        return axum::Json(json!({"totalTokens": 10})).into_response();
    }
    let u = ctx.standin.record(Api::Gemini, &path, &headers, &body);
    let step = next_step(&ctx, Api::Gemini, &body);
    let part = match &step {
        Step::Tool { name, args } => json!({"functionCall": {"name": name, "args": args}}),
        Step::Text(t) => json!({"text": t}),
    };
    let answer = json!({"candidates": [{"content": {"role": "model", "parts": [part]},
        "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": u.input + u.cache_read, "candidatesTokenCount": u.output,
            "cachedContentTokenCount": u.cache_read,
            "totalTokenCount": u.input + u.cache_read + u.output},
        "modelVersion": model});
    if method == "streamGenerateContent" {
        return sse(&ctx.standin, vec![event(None, &answer)]);
    }
    axum::Json(answer).into_response()
}
