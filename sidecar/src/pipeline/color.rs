//! Step 5b, colour: convert embedded ICC profiles (Display P3, Adobe RGB, CMYK print profiles)
//! to sRGB with Little CMS, because variants carry no profile and browsers read untagged
//! images as sRGB. Without this, a P3 photo would come out dull and a CMYK one garish, and a
//! grey image tagged with a grey profile (gamma 1.0, say) far too light or dark.
//! Metadata is dropped here too: nothing after this step carries EXIF, XMP or ICC.

use super::decode::Decoded;
use crate::image_types::Rgba;
use lcms2::{ColorSpaceSignature, Intent, PixelFormat, Profile, Transform};

/// Returns sRGB pixels. Profiles that fail to parse are ignored (the pixels are taken as
/// sRGB, which is what a browser does with a broken profile), and the reason is returned.
pub fn to_srgb(decoded: Decoded) -> (Rgba, Option<String>) {
    let Decoded {
        image,
        icc,
        cmyk,
        gray,
        ..
    } = decoded;
    let Some(icc) = icc else {
        return (image, None);
    };
    let profile = match Profile::new_icc(&icc) {
        Ok(p) => p,
        // lcms's own message is a generic two-line "Could not create the object": say what failed.
        Err(_) => {
            let why = format!(
                "ICC profile ignored: Little CMS cannot parse its {} bytes",
                icc.len()
            );
            return (image, Some(why));
        }
    };
    let srgb = Profile::new_srgb();
    if let Some(cmyk) = cmyk {
        // Photoshop-style (Adobe) CMYK JPEGs store inverted samples: lcms's *_REV format.
        let format = if cmyk.inverted {
            PixelFormat::CMYK_8_REV
        } else {
            PixelFormat::CMYK_8
        };
        return match Transform::<[u8; 4], [u8; 4]>::new(
            &profile,
            format,
            &srgb,
            PixelFormat::RGBA_8,
            Intent::Perceptual,
        ) {
            Ok(t) => {
                let src: Vec<[u8; 4]> = cmyk
                    .samples
                    .chunks_exact(4)
                    .map(|c| [c[0], c[1], c[2], c[3]])
                    .collect();
                let mut out = vec![[0u8, 0, 0, 255]; src.len()];
                t.transform_pixels(&src, &mut out);
                let data = out
                    .into_iter()
                    .flat_map(|p| [p[0], p[1], p[2], 255])
                    .collect();
                (Rgba { data, ..image }, None)
            }
            Err(_) => (image, Some(no_transform("CMYK profile", &profile))),
        };
    }
    if gray && profile.color_space() == ColorSpaceSignature::GrayData {
        return match gray_levels_to_srgb(&profile, &srgb) {
            Some(table) => {
                let mut image = image;
                for px in image.data.chunks_exact_mut(4) {
                    let [r, g, b] = table[usize::from(px[0])];
                    px[..3].copy_from_slice(&[r, g, b]);
                }
                (image, None)
            }
            None => (image, Some(no_transform("grey ICC profile", &profile))),
        };
    }
    if is_srgb(&profile) {
        return (image, None);
    }
    match Transform::<[u8; 4], [u8; 4]>::new(
        &profile,
        PixelFormat::RGBA_8,
        &srgb,
        PixelFormat::RGBA_8,
        Intent::Perceptual,
    ) {
        Ok(t) => {
            let mut image = image;
            let pixels: &mut [[u8; 4]] = bytemuck_rgba(&mut image.data);
            t.transform_in_place(pixels);
            (image, None)
        }
        // A grey or otherwise non-RGB profile on RGB pixels: keep the pixels as they are.
        Err(_) => (image, Some(no_transform("ICC profile", &profile))),
    }
}

/// The sRGB colour of each of the 256 grey levels under a grey profile: a grey source's pixels
/// (decoded with R = G = B) are converted through this table.
fn gray_levels_to_srgb(profile: &Profile, srgb: &Profile) -> Option<Vec<[u8; 3]>> {
    let t = Transform::<u8, [u8; 3]>::new(
        profile,
        PixelFormat::GRAY_8,
        srgb,
        PixelFormat::RGB_8,
        Intent::Perceptual,
    )
    .ok()?;
    let levels: Vec<u8> = (0..=255).collect();
    let mut table = vec![[0u8; 3]; 256];
    t.transform_pixels(&levels, &mut table);
    Some(table)
}

fn no_transform(what: &str, profile: &Profile) -> String {
    format!(
        "{what} ignored: no transform from its {:?} space to sRGB",
        profile.color_space()
    )
}

/// sRGB-tagged images need no work: compare the profile's description.
fn is_srgb(profile: &Profile) -> bool {
    profile
        .info(lcms2::InfoType::Description, lcms2::Locale::none())
        .is_some_and(|d| d.contains("sRGB"))
}

fn bytemuck_rgba(data: &mut [u8]) -> &mut [[u8; 4]] {
    let (pixels, rest) = data.as_chunks_mut::<4>();
    debug_assert!(rest.is_empty());
    pixels
}
