//! Any text, escaped for Telegram, is valid MarkdownV2; so is any link built from it.
#![no_main]
use apiary_core::notify::{check_md2, escape_md2, escape_md2_url};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let escaped = escape_md2(text);
        assert_eq!(check_md2(&escaped), Ok(()), "{text:?} -> {escaped:?}");
        let link = format!("[{}]({})", escape_md2(text), escape_md2_url(text));
        assert_eq!(check_md2(&link), Ok(()), "{link:?}");
        let _ = check_md2(text);
    }
});
