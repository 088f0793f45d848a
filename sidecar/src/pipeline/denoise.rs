//! Step 7, denoise (noisy sources only): a 3x3 sigma filter (Lee, 1983) that averages each
//! pixel with the neighbours within +-`SIGMA` of it. Grain is averaged away, edges (larger
//! steps) are kept. Encoders spend most of their bytes on grain nobody wants to keep.

use crate::image_types::Rgba;

const SIGMA: i16 = 20;

pub fn sigma_filter(img: &Rgba) -> Rgba {
    let (w, h) = (img.width as usize, img.height as usize);
    let src = &img.data;
    let mut out = src.clone();
    for y in 1..h.saturating_sub(1) {
        for x in 1..w.saturating_sub(1) {
            let i = (y * w + x) * 4;
            for c in 0..3 {
                let center = i16::from(src[i + c]);
                let (mut sum, mut n) = (0i32, 0i32);
                for (ny, nx) in [
                    (y - 1, x - 1),
                    (y - 1, x),
                    (y - 1, x + 1),
                    (y, x - 1),
                    (y, x),
                    (y, x + 1),
                    (y + 1, x - 1),
                    (y + 1, x),
                    (y + 1, x + 1),
                ] {
                    let v = i16::from(src[(ny * w + nx) * 4 + c]);
                    if (v - center).abs() <= SIGMA {
                        sum += i32::from(v);
                        n += 1;
                    }
                }
                out[i + c] = ((sum + n / 2) / n) as u8;
            }
        }
    }
    Rgba {
        width: img.width,
        height: img.height,
        data: out,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_edges_and_smooths_grain() {
        // left half 0, right half 200, with +-10 grain on the left
        let (w, h) = (8u32, 8u32);
        let mut data = Vec::new();
        for y in 0..h {
            for x in 0..w {
                let v = if x < 4 {
                    if (x + y) % 2 == 0 {
                        30
                    } else {
                        10
                    }
                } else {
                    200
                };
                data.extend_from_slice(&[v, v, v, 255]);
            }
        }
        let out = sigma_filter(&Rgba {
            width: w,
            height: h,
            data,
        });
        let px = |x: usize, y: usize| out.data[(y * 8 + x) * 4];
        assert!(
            (15..=25).contains(&px(2, 3)),
            "grain averaged: {}",
            px(2, 3)
        );
        assert_eq!(px(5, 3), 200, "edge side untouched");
    }
}
