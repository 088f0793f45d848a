//! The sidecar's first pipeline steps on hostile sources, as `pipeline::prepare` runs them:
//! sniff (magic bytes), probe (limits from the headers alone), decode (mozjpeg, image: PNG,
//! GIF, WebP), then the ICC conversion (lcms2) and the EXIF orientation.
//!
//! Decoding must respect the limits: whatever passes the probe decodes to exactly the probed
//! size and frame count, and no Rust allocation during decode is larger than the limits allow
//! (a counting allocator checks it; libFuzzer's -malloc_limit_mb backs it up for C code).
//! Limits are smaller than the defaults so each input decodes in milliseconds.
//! Seeds: small real images (fuzz/seeds/sniff_decode).
#![no_main]

use libfuzzer_sys::fuzz_target;
use rendition_sidecar::pipeline::limits::{check, Limits};
use rendition_sidecar::pipeline::{color, decode, orient, sniff};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Remembers the largest single allocation since the last reset.
struct Largest;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Largest {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        System.realloc(ptr, layout, new_size)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static ALLOC: Largest = Largest;

const LIMITS: Limits = Limits {
    max_source_bytes: 1 << 20,
    max_pixels: 1 << 20,
    max_frames: 16,
    max_animation_pixels: 1 << 22,
};

/// The largest buffer a decode within LIMITS needs: a 16-bit RGBA frame (8 bytes a pixel),
/// with room for a decoder's row padding. A bomb header asks for gigabytes.
const FRAME_BUFFER: usize = 8 * (1 << 20) + (1 << 20);
/// image-webp allocates each VP8 partition at the 24-bit size its header states before reading
/// it: up to 16 MiB whatever the image size (zeroed, so the untouched pages cost nothing, and
/// freed when the read fails). Bounded and not a bomb; found by this target, see fuzz/README.md.
const VP8_PARTITION: usize = (1 << 24) + (1 << 20);
const LARGEST_ALLOCATION: usize = if FRAME_BUFFER > VP8_PARTITION {
    FRAME_BUFFER
} else {
    VP8_PARTITION
};

thread_local! {
    static LAST_PANIC: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

fuzz_target!(
    init: {
        // mozjpeg reports libjpeg errors by panicking, and decode catches them; libfuzzer-sys's
        // hook would abort on those. So the hook only remembers the message, and a panic that
        // reaches the target (not caught by decode) is printed and aborts below.
        std::panic::set_hook(Box::new(|info| {
            LAST_PANIC.with(|p| *p.borrow_mut() = info.to_string());
        }));
    },
    |data: &[u8]| {
        if std::panic::catch_unwind(|| run(data)).is_err() {
            LAST_PANIC.with(|p| eprintln!("panicked: {}", p.borrow()));
            std::process::abort();
        }
    }
);

fn run(data: &[u8]) {
    let Ok(format) = sniff::sniff(data) else {
        return;
    };
    let Ok(probe) = check(data, format, &LIMITS) else {
        return;
    };
    assert!(u64::from(probe.width) * u64::from(probe.height) <= LIMITS.max_pixels);
    assert!(probe.frames >= 1 && probe.frames <= LIMITS.max_frames);

    LARGEST.store(0, Ordering::Relaxed);
    let decoded = decode::decode(data, format);
    let largest = LARGEST.load(Ordering::Relaxed);
    assert!(
        largest <= LARGEST_ALLOCATION,
        "{format:?} probed {probe:?}, decode allocated {largest} bytes at once"
    );
    let Ok(decoded) = decoded else {
        return;
    };
    let image = &decoded.image;
    assert_eq!(
        (image.width, image.height),
        (probe.width, probe.height),
        "{format:?}: decoded size differs from the probe"
    );
    assert_eq!(
        image.data.len(),
        image.width as usize * image.height as usize * 4
    );
    if let Some(animation) = &decoded.frames {
        let frames = &animation.frames;
        assert!(
            frames.len() > 1 && frames.len() as u32 <= probe.frames,
            "{} frames, probe {probe:?}",
            frames.len()
        );
        for f in frames {
            assert_eq!((f.image.width, f.image.height), (image.width, image.height));
            assert_eq!(f.image.data.len(), image.data.len());
        }
    }
    if let Some(cmyk) = &decoded.cmyk {
        assert_eq!(cmyk.samples.len(), image.data.len());
    }
    assert!((1..=8).contains(&decoded.orientation));

    let orientation = decoded.orientation;
    let (w, h, len) = (image.width, image.height, image.data.len());
    let (srgb, _note) = color::to_srgb(decoded);
    assert_eq!((srgb.width, srgb.height, srgb.data.len()), (w, h, len));
    let oriented = orient::apply(srgb, orientation);
    assert_eq!(oriented.data.len(), len);
    assert_eq!(
        u64::from(oriented.width) * u64::from(oriented.height),
        u64::from(w) * u64::from(h)
    );
}
