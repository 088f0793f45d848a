//! AVIF behind one interface. The default is libaom through libavif (measured here 3-5x
//! faster than rav1e at equal SSIMULACRA2; see docs/encoders.md and `make bench`); rav1e
//! through `ravif` is the fallback when built with the `ravif` feature.
//!
//! Photos use 4:2:0 chroma; screenshots and flat art 4:4:4, because subsampled chroma smears
//! coloured text. Speed 6 at every size: the usual server-side trade of encode time against
//! bytes, measured per size at equal SSIMULACRA2 ([`SPEED`]). One thread per encode, except
//! where a client waits for this one encode ([`threaded_encoder`]).

use super::{Codec, EncodeError, EncodeHints, Encoded};
use crate::image_types::Rgba;

/// An AVIF encoder. `quality` is libavif's 0-100 scale (100 lossless); libaom's quantizer 25 of
/// 63 is quality 60 here (`quality::avif_quality_for_quantizer`).
pub trait AvifEncoder: Send + Sync {
    fn name(&self) -> &'static str;
    fn encode(&self, img: &Rgba, quality: u8, hints: EncodeHints) -> Result<Encoded, EncodeError>;
}

/// Encoder speed (0 slowest .. 10 fastest), at every output size. Measured at equal
/// SSIMULACRA2 (70) on three 2.5-4.9 MP photos at 480, 1536 px and full width
/// (`examples/score_cost.rs avif:W`): speed 7 made 14-50% more bytes for about 30% less time,
/// speed 8 30-70% more. Speed 5 made 6-13% fewer bytes at 480-768 px but tripled those
/// encodes: in the verified matrix, 4.4% fewer bytes on the phone-size AVIF variants for 7%
/// more time per source (docs/benchmarks.md), not taken.
pub const SPEED: u8 = 6;

/// libaom via libavif.
#[derive(Debug, Clone, Copy)]
pub struct Libaom {
    pub speed: u8,
    /// libaom's worker threads for one encode (row-based multithreading).
    pub threads: u8,
}

impl Libaom {
    /// `speed`, one thread.
    pub const fn fixed(speed: u8) -> Libaom {
        Libaom { speed, threads: 1 }
    }
}

impl Default for Libaom {
    fn default() -> Self {
        Libaom::fixed(SPEED)
    }
}

impl AvifEncoder for Libaom {
    fn name(&self) -> &'static str {
        "libaom"
    }

    fn encode(&self, img: &Rgba, quality: u8, hints: EncodeHints) -> Result<Encoded, EncodeError> {
        use libavif::{Encoder, RgbPixels, YuvFormat};
        let failed = |e: libavif::Error| EncodeError::new(Codec::Avif, format!("{e:?}"));
        let rgb = RgbPixels::new(img.width, img.height, &img.data).map_err(failed)?;
        let yuv = if hints.grayscale {
            YuvFormat::Yuv400
        } else if hints.is_graphic() {
            YuvFormat::Yuv444
        } else {
            YuvFormat::Yuv420
        };
        let image = rgb.to_image(yuv);
        let mut enc = Encoder::new();
        enc.set_quality(quality)
            .set_alpha_quality(quality.max(75))
            .set_speed(self.speed)
            .set_max_threads(usize::from(self.threads.max(1)));
        let data = enc.encode(&image).map_err(failed)?;
        Ok(Encoded {
            codec: Codec::Avif,
            bytes: data.to_vec(),
            quality,
            lossless: false,
        })
    }
}

/// rav1e via ravif.
#[cfg(feature = "ravif")]
#[derive(Debug, Clone, Copy)]
pub struct Rav1e {
    pub speed: u8,
}

#[cfg(feature = "ravif")]
impl Default for Rav1e {
    fn default() -> Self {
        Rav1e { speed: SPEED }
    }
}

#[cfg(feature = "ravif")]
impl AvifEncoder for Rav1e {
    fn name(&self) -> &'static str {
        "rav1e"
    }

    fn encode(&self, img: &Rgba, quality: u8, _hints: EncodeHints) -> Result<Encoded, EncodeError> {
        use rgb::FromSlice;
        let pixels = img.data.as_rgba();
        let res = ravif::Encoder::new()
            .with_quality(f32::from(quality))
            .with_alpha_quality(f32::from(quality.max(75)))
            .with_speed(self.speed)
            .with_num_threads(Some(1))
            .encode_rgba(ravif::Img::new(
                pixels,
                img.width as usize,
                img.height as usize,
            ))
            .map_err(|e| EncodeError::new(Codec::Avif, format!("rav1e: {e}")))?;
        Ok(Encoded {
            codec: Codec::Avif,
            bytes: res.avif_file,
            quality,
            lossless: false,
        })
    }
}

/// The encoder this build uses by default: one thread per encode (a worker per core keeps
/// every core busy with its own encodes).
pub fn default_encoder() -> Box<dyn AvifEncoder> {
    Box::new(Libaom::default())
}

/// The default encoder with `threads` threads per encode, for the slot a client is waiting
/// for: at 3 MP, 2 threads encode in 472 ms instead of 852 for the same bytes
/// (`examples/avif_speeds.rs`).
pub fn threaded_encoder(threads: u8) -> Box<dyn AvifEncoder> {
    Box::new(Libaom {
        threads,
        ..Libaom::default()
    })
}
