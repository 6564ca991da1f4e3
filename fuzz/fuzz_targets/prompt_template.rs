//! Any prompt template either is refused at save time or renders; neither panics.
#![no_main]
use apiary_core::prompts::{check_template, render, PromptContext};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(template) = std::str::from_utf8(data) {
        if check_template(template).is_ok() {
            let _ = render(template, &PromptContext::default());
        }
    }
});
