//! Step 5a, orient: apply the EXIF orientation so the pixels stand the way a browser shows
//! them. Variants carry no metadata, so the rotation must be baked in.

use crate::image_types::Rgba;

/// The orientation tag (1-8) of raw EXIF (TIFF) bytes; 1 when absent or unreadable.
pub fn exif_orientation(exif: &[u8]) -> u8 {
    exif::Reader::new()
        .read_raw(exif.to_vec())
        .ok()
        .and_then(|e| {
            e.get_field(exif::Tag::Orientation, exif::In::PRIMARY)
                .and_then(|f| f.value.get_uint(0))
        })
        .filter(|v| (1..=8).contains(v))
        .map_or(1, |v| v as u8)
}

/// Applies orientation `o` (EXIF 1-8): 2 mirror, 3 rotate 180, 4 flip, 5 transpose,
/// 6 rotate 90 clockwise, 7 transverse, 8 rotate 270 clockwise.
pub fn apply(image: Rgba, o: u8) -> Rgba {
    if !(2..=8).contains(&o) {
        return image;
    }
    let (w, h) = (image.width as usize, image.height as usize);
    let swap = o >= 5;
    let (nw, nh) = if swap { (h, w) } else { (w, h) };
    let mut out = vec![0u8; image.data.len()];
    for y in 0..h {
        for x in 0..w {
            let (nx, ny) = match o {
                2 => (w - 1 - x, y),
                3 => (w - 1 - x, h - 1 - y),
                4 => (x, h - 1 - y),
                5 => (y, x),
                6 => (h - 1 - y, x),
                7 => (h - 1 - y, w - 1 - x),
                _ => (y, w - 1 - x), // 8
            };
            let src = (y * w + x) * 4;
            let dst = (ny * nw + nx) * 4;
            out[dst..dst + 4].copy_from_slice(&image.data[src..src + 4]);
        }
    }
    Rgba {
        width: nw as u32,
        height: nh as u32,
        data: out,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2x1 image: red, green. Where does the red pixel land for each orientation?
    #[test]
    fn every_orientation() {
        let img = || Rgba {
            width: 2,
            height: 1,
            data: vec![255, 0, 0, 255, 0, 255, 0, 255],
        };
        let red_at = |o| {
            let r = apply(img(), o);
            let i = r.data.chunks(4).position(|p| p[0] == 255).unwrap();
            (r.width, r.height, i)
        };
        assert_eq!(red_at(1), (2, 1, 0));
        assert_eq!(red_at(2), (2, 1, 1));
        assert_eq!(red_at(3), (2, 1, 1));
        assert_eq!(red_at(4), (2, 1, 0));
        assert_eq!(red_at(5), (1, 2, 0));
        assert_eq!(red_at(6), (1, 2, 0));
        assert_eq!(red_at(7), (1, 2, 1));
        assert_eq!(red_at(8), (1, 2, 1));
    }
}
