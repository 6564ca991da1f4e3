//! The stand-in model provider against the providers' published types: every kind of answer
//! it gives (each API, streamed and not, a tool call and a final text) is checked with the
//! official SDKs' models (`scripts/check_standin.py`; `make test-deps` installs the SDKs).

use std::sync::Arc;

use apiary_testkit::model_standin::{ModelStandin, Reported, Step};
use serde_json::{json, Value};

/// The `data:` payloads of a server-sent event stream (`[DONE]` is no JSON).
fn events(text: &str) -> Vec<Value> {
    text.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).expect("each event is JSON"))
        .collect()
}

#[tokio::test]
async fn every_answer_of_the_stand_in_validates_against_the_providers_sdk_types() {
    // A tool call while the conversation holds no tool result, then a final text.
    let standin = ModelStandin::start(
        Arc::new(|_, _, done| {
            if done == 0 {
                Step::Tool {
                    name: "write_file".into(),
                    args: json!({"file_path": "a.txt", "content": "x"}),
                }
            } else {
                Step::Text("done".into())
            }
        }),
        Reported {
            input: 10,
            output: 5,
            cache_read: 2,
            cache_write: 1,
        },
    )
    .await;
    let http = reqwest::Client::new();
    let mut lines = Vec::new();
    for stream in [false, true] {
        for after_tool in [false, true] {
            let tool_result = json!({"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "ok"}]});
            let requests = [
                (
                    "anthropic",
                    "/v1/messages",
                    json!({"model": "claude-sonnet-4-5", "max_tokens": 10, "stream": stream,
                        "messages": if after_tool { json!([tool_result]) } else { json!([{"role": "user", "content": "hi"}]) }}),
                ),
                (
                    "chat",
                    "/v1/chat/completions",
                    json!({"model": "gpt-5", "stream": stream, "stream_options": {"include_usage": true},
                        "messages": if after_tool { json!([{"role": "tool", "tool_call_id": "c", "content": "ok"}]) } else { json!([{"role": "user", "content": "hi"}]) }}),
                ),
                (
                    "responses",
                    "/v1/responses",
                    json!({"model": "gpt-5-codex", "stream": stream,
                        "input": if after_tool { json!([{"type": "function_call_output", "call_id": "c", "output": "ok"}]) } else { json!("hi") }}),
                ),
                (
                    "gemini",
                    if stream {
                        "/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse"
                    } else {
                        "/v1beta/models/gemini-2.5-pro:generateContent"
                    },
                    json!({"contents": [if after_tool {
                        json!({"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {}}}]})
                    } else {
                        json!({"role": "user", "parts": [{"text": "hi"}]})
                    }]}),
                ),
            ];
            for (api, path, body) in requests {
                let r = http
                    .post(format!("{}{path}", standin.base))
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200, "{api} {path}");
                let text = r.text().await.unwrap();
                let line = if stream {
                    json!({"api": api, "stream": true, "events": events(&text)})
                } else {
                    json!({"api": api, "stream": false, "body": serde_json::from_str::<Value>(&text).unwrap()})
                };
                lines.push(line.to_string());
            }
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("answers.jsonl");
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../scripts/check_standin.py"
    );
    let out = std::process::Command::new("python3")
        .arg(script)
        .arg(&file)
        .output()
        .expect("python3 runs");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{said}");
    assert!(said.contains("0 mismatches"), "{said}");
}
