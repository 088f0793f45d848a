//! The learned quality model at run time: LightGBM regression trees compiled into flat node
//! tables by `build.rs` from the committed `sidecar/models/*.txt`, one per format, predicting
//! the encoder quality that reaches a SSIMULACRA2 target for [`OutputFeatures`].
//!
//! The walk follows LightGBM's own `NumericalDecision` (its C++ code generator is known to
//! drop the comparison for missing-value splits, so it is not the reference): values within
//! 1e-35 of zero are zero; NaN is zero unless the split's missing type is NaN; a value at the
//! threshold goes left.

use super::features::N_FEATURES;

/// One regression model: the sum of its trees, each compiled to a function by build.rs.
#[derive(Debug)]
pub struct Model {
    pub trees: usize,
    pub eval: Option<fn(&[f64; N_FEATURES]) -> f64>,
}

/// The trees, as build.rs wrote them (generated code: identical leaves under one split are
/// LightGBM's, not ours to tidy).
#[allow(clippy::all, unused_imports)]
mod generated {
    use super::{goes_left, Model, N_FEATURES};
    include!(concat!(env!("OUT_DIR"), "/models.rs"));
}
pub use generated::{AVIF, HAS_AVIF, HAS_JPEG, HAS_WEBP, JPEG, WEBP};

/// LightGBM's kZeroThreshold (1e-35 as f32, widened).
const K_ZERO: f64 = 1.000_000_018_002_509_5e-35;

/// LightGBM's `NumericalDecision` for one split.
#[inline(always)]
fn goes_left(value: f64, threshold: f64, decision: u8) -> bool {
    let missing = (decision >> 2) & 3;
    let default_left = decision & 2 != 0;
    let f = if value.is_nan() && missing != 2 {
        0.0
    } else {
        value
    };
    if (missing == 1 && f.abs() <= K_ZERO) || (missing == 2 && f.is_nan()) {
        default_left
    } else {
        f <= threshold
    }
}

impl Model {
    pub fn is_empty(&self) -> bool {
        self.eval.is_none()
    }

    pub fn predict(&self, x: &[f64; N_FEATURES]) -> f64 {
        let mut x = *x;
        for v in &mut x {
            if !v.is_nan() && v.abs() <= K_ZERO {
                *v = 0.0;
            }
        }
        self.eval.map_or(0.0, |f| f(&x))
    }
}
