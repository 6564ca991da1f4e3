//! Whatever a box host answers, reading it as a box or a list of boxes fails cleanly.
#![no_main]
use apiary_boxes::BoxInfo;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = serde_json::from_slice::<BoxInfo>(data);
    let _ = serde_json::from_slice::<Vec<BoxInfo>>(data);
});
