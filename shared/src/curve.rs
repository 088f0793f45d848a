//! Quality curves: one output encoded over a grid of qualities, as `(quality, score, bytes)`
//! points in ascending quality (`rendition label` writes them). The training label of the
//! quality model is [`quality_for`]; the trainer and the sidecar's evaluation must agree on it
//! to the last bit, so it is defined once, here, with no I/O.

/// One measured point: encoder quality, SSIMULACRA2 score, encoded bytes.
pub type Point = (u8, f64, usize);

/// The quality where the curve first reaches `target` (linear between grid points); None when
/// it never does.
pub fn quality_for(curve: &[Point], target: f64) -> Option<f64> {
    let mut prev: Option<&Point> = None;
    for p in curve {
        if p.1 >= target {
            return Some(match prev {
                Some(a) if p.1 > a.1 => {
                    f64::from(a.0) + (target - a.1) / (p.1 - a.1) * f64::from(p.0 - a.0)
                }
                _ => f64::from(p.0),
            });
        }
        prev = Some(p);
    }
    None
}

/// `value` of the curve at quality `q` (linear between grid points, clamped at both ends).
pub fn value_at(curve: &[Point], q: f64, value: impl Fn(&Point) -> f64) -> f64 {
    let mut prev = curve.first();
    for p in curve {
        if f64::from(p.0) >= q {
            return match prev {
                Some(a) if p.0 > a.0 => {
                    value(a) + (q - f64::from(a.0)) / f64::from(p.0 - a.0) * (value(p) - value(a))
                }
                _ => value(p),
            };
        }
        prev = Some(p);
    }
    curve.last().map_or(0.0, value)
}

/// The probe's points (encoder quality, score of the output's tile mosaic), in ascending
/// quality: the sidecar's `quality::probe` measures them, the label tool records them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ProbeLine {
    pub points: [(u8, f64); PROBE_POINTS],
}

/// How many qualities the probe encodes at.
pub const PROBE_POINTS: usize = 3;

/// The columns that end every row of the quality model's input, in this order: the probe
/// scores, the slope of the probe's segment that reaches the target, the quality where it
/// does, and the target. The last three depend on the target, so the trainer and the sidecar
/// both fill them with [`complete_row`]: one definition, bit for bit the same numbers on both
/// sides.
pub const TARGET_COLUMNS: [&str; PROBE_POINTS + 3] = [
    "probe_score_lo",
    "probe_score_mid",
    "probe_score_hi",
    "probe_slope",
    "probe_quality",
    "target",
];

impl ProbeLine {
    /// The segment the probe reaches `target` on (the first pair of neighbouring points that
    /// brackets it, else the end segment on the target's side, extrapolated), as its first
    /// point and its slope in score points per quality point (0 for a vertical segment).
    fn segment(&self, target: f64) -> (f64, f64, f64) {
        let p = &self.points;
        let brackets =
            |w: &[(u8, f64)]| (w[0].1.min(w[1].1)..=w[0].1.max(w[1].1)).contains(&target);
        let (a, b) = match p.windows(2).find(|w| brackets(w)) {
            Some(w) => (w[0], w[1]),
            None if target < p[0].1 => (p[0], p[1]),
            None => (p[PROBE_POINTS - 2], p[PROBE_POINTS - 1]),
        };
        let (q0, q1) = (f64::from(a.0), f64::from(b.0));
        let slope = if q1 == q0 {
            0.0
        } else {
            (b.1 - a.1) / (q1 - q0)
        };
        (q0, a.1, slope)
    }

    /// Score points per quality point on the segment that reaches `target`.
    pub fn slope(&self, target: f64) -> f64 {
        self.segment(target).2
    }

    /// The quality where the probe's polyline reaches `target`. Why a feature of its own:
    /// trees split on one column at a time and cannot divide a score gap by a slope, yet that
    /// quotient is the best single estimate the probe gives. Clamped to [-50, 150]; a flat
    /// segment (a probe that did not move) gives 150.
    pub fn quality_for(&self, target: f64) -> f64 {
        let (q0, s0, slope) = self.segment(target);
        if slope.abs() < 0.01 || !slope.is_finite() {
            return 150.0;
        }
        (q0 + (target - s0) / slope).clamp(-50.0, 150.0)
    }
}

/// Fills the [`TARGET_COLUMNS`] at the end of `row` for `probe` and `target`. A row shorter
/// than those columns is left alone.
pub fn complete_row(row: &mut [f64], probe: &ProbeLine, target: f64) {
    let Some(start) = row.len().checked_sub(TARGET_COLUMNS.len()) else {
        return;
    };
    for (cell, (_, score)) in row[start..].iter_mut().zip(probe.points) {
        *cell = score;
    }
    row[start + PROBE_POINTS..].copy_from_slice(&[
        probe.slope(target),
        probe.quality_for(target),
        target,
    ]);
}

#[cfg(test)]
mod tests {
    use super::*;

    const CURVE: [Point; 3] = [(20, 40.0, 1000), (40, 60.0, 2000), (60, 80.0, 4000)];

    #[test]
    fn interpolates_between_grid_points() {
        assert_eq!(quality_for(&CURVE, 50.0), Some(30.0));
        assert_eq!(
            quality_for(&CURVE, 30.0),
            Some(20.0),
            "already reached at the first point"
        );
        assert_eq!(quality_for(&CURVE, 90.0), None);
        assert_eq!(value_at(&CURVE, 50.0, |p| p.2 as f64), 3000.0);
        assert_eq!(value_at(&CURVE, 30.0, |p| p.1), 50.0);
        assert_eq!(value_at(&CURVE, 10.0, |p| p.1), 40.0);
        assert_eq!(value_at(&CURVE, 99.0, |p| p.2 as f64), 4000.0);
    }

    const PROBE: ProbeLine = ProbeLine {
        points: [(10, 40.0), (35, 60.0), (75, 80.0)],
    };

    #[test]
    fn the_probe_gives_the_quality_for_a_target_on_its_segment() {
        assert_eq!(PROBE.slope(70.0), 0.5);
        assert_eq!(PROBE.quality_for(70.0), 55.0);
        assert_eq!(PROBE.slope(50.0), 0.8);
        assert_eq!(PROBE.quality_for(50.0), 22.5);
        assert_eq!(
            PROBE.quality_for(30.0),
            -2.5,
            "extrapolated below the first point"
        );
        assert_eq!(PROBE.quality_for(90.0), 95.0, "and above the last");
        assert_eq!(PROBE.quality_for(200.0), 150.0, "clamped");
        let flat = ProbeLine {
            points: [(10, 90.0), (35, 90.0), (75, 90.0)],
        };
        assert_eq!(flat.quality_for(70.0), 150.0);
    }

    #[test]
    fn complete_row_fills_the_target_columns_in_their_order() {
        let mut row = [7.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0];
        complete_row(&mut row, &PROBE, 70.0);
        assert_eq!(row, [7.0, 40.0, 60.0, 80.0, 0.5, 55.0, 70.0]);
        let mut short = [1.0, 2.0];
        complete_row(&mut short, &PROBE, 70.0);
        assert_eq!(short, [1.0, 2.0]);
    }
}
