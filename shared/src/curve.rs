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
}
