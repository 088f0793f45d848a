//! Runs parse + select N times, for instruction counting under callgrind:
//!   valgrind --tool=callgrind target/release/examples/parse_loop 100000
use rendition_shared::{select, ClientProfile, SlotSet};
use std::hint::black_box;

const CHROME: [(&[u8], &[u8]); 8] = [
    (b":authority", b"shop.example.com"),
    (b":path", b"/img/hero.jpg"),
    (b"user-agent", b"Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36"),
    (b"accept", b"image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8"),
    (b"accept-encoding", b"gzip, deflate, br, zstd"),
    (b"accept-language", b"en-US,en;q=0.9"),
    (b"sec-ch-ua-mobile", b"?1"),
    (b"referer", b"https://shop.example.com/"),
];

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
