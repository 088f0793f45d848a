//! The learned quality model at run time: LightGBM regression trees compiled into flat node
//! tables by `build.rs` from the committed `sidecar/models/*.txt`, one per format, predicting
//! the encoder quality that reaches a SSIMULACRA2 target for [`OutputFeatures`].
//!
//! The walk follows LightGBM's own `NumericalDecision` (its C++ code generator is known to
//! drop the comparison for missing-value splits, so it is not the reference): values within
//! 1e-35 of zero are zero; NaN is zero unless the split's missing type is NaN; a value at the
//! threshold goes left.

use super::features::N_FEATURES;

/// A split (`feature < u16::MAX`) or a leaf (its value in `threshold`).
#[derive(Debug)]
pub struct Node {
    pub feature: u16,
    pub threshold: f64,
    pub decision: u8,
    pub left: usize,
    pub right: usize,
}

/// One regression model: the sum of its trees.
#[derive(Debug)]
pub struct Model {
    pub nodes: &'static [Node],
    pub roots: &'static [usize],
}

include!(concat!(env!("OUT_DIR"), "/models.rs"));

/// LightGBM's kZeroThreshold (1e-35 as f32, widened).
const K_ZERO: f64 = 1.000_000_018_002_509_5e-35;

impl Model {
    pub fn is_empty(&self) -> bool {
        self.roots.is_empty()
    }

    pub fn predict(&self, x: &[f64; N_FEATURES]) -> f64 {
        let mut x = *x;
        for v in &mut x {
            if !v.is_nan() && v.abs() <= K_ZERO {
                *v = 0.0;
            }
        }
        self.roots.iter().map(|&root| self.walk(root, &x)).sum()
    }

    fn walk(&self, mut i: usize, x: &[f64; N_FEATURES]) -> f64 {
        loop {
            let Some(n) = self.nodes.get(i) else {
                return 0.0;
            };
            if n.feature == u16::MAX {
                return n.threshold;
            }
            let mut f = x.get(usize::from(n.feature)).copied().unwrap_or(0.0);
            let missing = (n.decision >> 2) & 3;
            let default_left = n.decision & 2 != 0;
            if f.is_nan() && missing != 2 {
                f = 0.0;
            }
            let left = if (missing == 1 && f.abs() <= K_ZERO) || (missing == 2 && f.is_nan()) {
                default_left
            } else {
                f <= n.threshold
            };
            i = if left { n.left } else { n.right };
        }
    }
}
