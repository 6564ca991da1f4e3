//! Whatever a box posts to the callback API, reading and checking it (the code the server runs
//! before anything is stored) either refuses it naming a field or yields a value within limits.
#![no_main]
use apiary_core::callback::{
    field_of, ErrorIn, LogsIn, PrIn, SpecIn, StatusIn, MAX_LOG_LINES, MAX_LOG_LINE_BYTES,
    MAX_MESSAGE_BYTES, MAX_SPEC_BYTES,
};
use libfuzzer_sys::fuzz_target;

fn refused(e: serde_json::Error) {
    assert!(!field_of(&e.to_string()).is_empty());
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    match which % 5 {
        0 => match serde_json::from_slice::<LogsIn>(body) {
            Ok(b) => {
                if let Ok(lines) = b.validate() {
                    assert!(!lines.is_empty() && lines.len() <= MAX_LOG_LINES);
                    assert!(lines.iter().all(|l| l.len() <= MAX_LOG_LINE_BYTES));
                }
            }
            Err(e) => refused(e),
        },
        1 => match serde_json::from_slice::<StatusIn>(body) {
            Ok(b) => {
                if let Ok((_, message)) = b.validate() {
                    assert!(message.is_none_or(|m| m.len() <= MAX_MESSAGE_BYTES));
                }
            }
            Err(e) => refused(e),
        },
        2 => match serde_json::from_slice::<SpecIn>(body) {
            Ok(b) => {
                if let Ok(spec) = b.validate() {
                    assert!(!spec.trim().is_empty() && spec.len() <= MAX_SPEC_BYTES);
                }
            }
            Err(e) => refused(e),
        },
        3 => match serde_json::from_slice::<PrIn>(body) {
            Ok(b) => {
                if let Ok(pr) = b.validate() {
                    assert!(pr.branch.starts_with("apiary/") && pr.branch.len() <= 250);
                    assert!(pr.message.is_none_or(|m| m.len() <= 5 + 64 * 4));
                }
            }
            Err(e) => refused(e),
        },
        _ => match serde_json::from_slice::<ErrorIn>(body) {
            Ok(b) => {
                if let Ok(error) = b.validate() {
                    assert!(!error.trim().is_empty() && error.len() <= MAX_MESSAGE_BYTES);
                }
            }
            Err(e) => refused(e),
        },
    }
});
