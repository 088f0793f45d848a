//! Runs parse + select N times, for instruction counting under callgrind:
//!   valgrind --tool=callgrind target/release/examples/parse_loop 100000
use rendition_shared::{select, ClientProfile, SlotSet};
use std::hint::black_box;

#[path = "../benches/fixtures.rs"]
mod fixtures;
use fixtures::CHROME_ANDROID as CHROME;

fn main() {
    let n: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    let stored = SlotSet::from_bits(1 << 0x08 | 1 << 0x09 | 1 << 0x0a).unwrap_or_default();
    let mut acc = 0u32;
    for _ in 0..n {
        let p = ClientProfile::from_headers(black_box(CHROME).iter().map(|&(n, v)| (n, v)));
        if let rendition_shared::Selection::Variant { slot, .. } = select(black_box(stored), &p) {
            acc = acc.wrapping_add(slot.bits());
        }
    }
    println!("{acc}");
}
