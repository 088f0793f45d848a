//! The quality model's training data, one JSON line per labelled output: the type the sidecar's
//! `rendition label` writes and both `rendition eval` and the trainer read, defined once.
//!
//! A label is one (image, format, output width): the output's features, the probe's points and
//! the quality sweep, from which [`crate::curve::quality_for`] reads the quality that reaches
//! any target.

use crate::curve::PROBE_POINTS;
use serde::{Deserialize, Serialize};

/// One labelled output.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Label {
    pub image: String,
    /// "train" or "test", by [`split_of`] the source file name (crops of one photo stay
    /// together).
    pub split: String,
    pub codec: String,
    pub width: u32,
    pub height: u32,
    pub features: Vec<f64>,
    /// The probe's (quality, score) points: the trainer fills the target columns from them.
    pub probe: [(u8, f64); PROBE_POINTS],
    /// (quality, score, bytes) over the label grid.
    pub sweep: Vec<(u8, f64, usize)>,
}

/// "test" for about a quarter of the source images, "train" for the rest, by a hash of the
/// source's name: the crops of one photo (`name@crop`) share it, so no photo is on both sides.
pub fn split_of(name: &str) -> &'static str {
    let base = name.split('@').next().unwrap_or(name);
    let h = base.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    if h % 4 == 0 {
        "test"
    } else {
        "train"
    }
}

/// The labels of a labels file's lines; a line that is not a label is skipped (a file cut
/// short by an interrupted run keeps its complete lines).
pub fn parse_lines<'a>(lines: impl IntoIterator<Item = &'a str>) -> Vec<Label> {
    lines
        .into_iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip_and_broken_lines_are_skipped() {
        let label = Label {
            image: "abcd-photo.jpg@tl".into(),
            split: split_of("abcd-photo.jpg@tl").into(),
            codec: "avif".into(),
            width: 480,
            height: 320,
            features: vec![1.0, 2.5],
            probe: [(10, 20.0), (35, 50.0), (75, 80.0)],
            sweep: vec![(1, -10.0, 900), (100, 99.0, 90_000)],
        };
        let line = serde_json::to_string(&label).unwrap();
        let text = format!("{line}\n{{\"image\": \"cut sh\n{line}");
        assert_eq!(parse_lines(text.lines()), vec![label.clone(), label]);
        assert_eq!(split_of("abcd-photo.jpg@tl"), split_of("abcd-photo.jpg"));
    }
}
