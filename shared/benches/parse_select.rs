//! Parse + select, the per-request cost the filter pays on every image request.
//! Goal: under 1 µs for both together on this machine (docs/benchmarks.md). `make bench` runs it.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use rendition_shared::{select, ClientProfile, IndexRecord, SlotSet};

#[path = "../benches/fixtures.rs"]
mod fixtures;
use fixtures::CHROME_ANDROID as CHROME;

const SAFARI_IPAD: [(&[u8], &[u8]); 4] = [
    (b"User-Agent", b"Mozilla/5.0 (iPad; CPU OS 12_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/12.1.2 Mobile/15E148 Safari/604.1"),
    (b"Accept", b"image/png,image/svg+xml,image/*;q=0.8,video/*;q=0.8,*/*;q=0.5"),
    (b"Accept-Encoding", b"gzip, deflate, br"),
    (b"Save-Data", b"on"),
];

fn bench(c: &mut Criterion) {
    // A record with only desktop variants: the mobile client walks most of the chain.
    let record = IndexRecord {
        stored: SlotSet::from_bits(1 << 0x08 | 1 << 0x09 | 1 << 0x0a).unwrap_or_default(),
        ..IndexRecord::default()
    };
    c.bench_function("parse+select chrome android (fallback walk)", |b| {
        b.iter(|| {
            let p = ClientProfile::from_headers(black_box(CHROME).iter().map(|&(n, v)| (n, v)));
            select(record.stored, &p)
        })
    });
    c.bench_function("parse+select safari ipad save-data", |b| {
        b.iter(|| {
            let p =
                ClientProfile::from_headers(black_box(SAFARI_IPAD).iter().map(|&(n, v)| (n, v)));
            select(record.stored, &p)
        })
    });
    c.bench_function("parse only: chrome android", |b| {
        b.iter(|| ClientProfile::from_headers(black_box(CHROME).iter().map(|&(n, v)| (n, v))))
    });
    let profile = ClientProfile::from_headers(CHROME.iter().map(|&(n, v)| (n, v)));
    c.bench_function("select only: chrome android", |b| {
        b.iter(|| select(black_box(record.stored), black_box(&profile)))
    });
    c.bench_function("record decode", |b| {
        let bytes = record.encode();
        b.iter(|| IndexRecord::decode(black_box(&bytes)))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
