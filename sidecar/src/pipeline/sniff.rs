//! Step 2, sniff: the source format from its magic bytes. Extensions and Content-Type lie
//! (an HTML error page served as `image/jpeg` is common), the first bytes do not.

use super::refusal::Refusal;
use crate::image_types::SourceFormat;

/// Identifies the format, or refuses with what the bytes look like instead.
pub fn sniff(bytes: &[u8]) -> Result<SourceFormat, Refusal> {
    match bytes {
        [0xFF, 0xD8, 0xFF, ..] => Ok(SourceFormat::Jpeg),
        [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, ..] => Ok(SourceFormat::Png),
        [b'G', b'I', b'F', b'8', b'7' | b'9', b'a', ..] => Ok(SourceFormat::Gif),
        [b'R', b'I', b'F', b'F', _, _, _, _, b'W', b'E', b'B', b'P', ..] => Ok(SourceFormat::Webp),
        [_, _, _, _, b'f', b't', b'y', b'p', b'a', b'v', b'i', b'f' | b's', ..] => Err(
            Refusal::Unsupported("AVIF source (already AVIF; served as is)"),
        ),
        _ if looks_like_text(bytes) => Err(Refusal::NotAnImage("text or markup")),
        [] => Err(Refusal::NotAnImage("empty body")),
        _ => Err(Refusal::NotAnImage("unknown magic bytes")),
    }
}

fn looks_like_text(bytes: &[u8]) -> bool {
    let head = &bytes[..bytes.len().min(64)];
    !head.is_empty()
        && head
            .iter()
            .all(|&b| b.is_ascii_graphic() || b.is_ascii_whitespace() || b >= 0x80)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_bytes() {
        assert_eq!(sniff(b"\xFF\xD8\xFF\xE0rest"), Ok(SourceFormat::Jpeg));
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\nIHDR"), Ok(SourceFormat::Png));
        assert_eq!(sniff(b"GIF89a...."), Ok(SourceFormat::Gif));
        assert_eq!(sniff(b"GIF87a...."), Ok(SourceFormat::Gif));
        assert_eq!(sniff(b"RIFF\0\0\0\0WEBPVP8 "), Ok(SourceFormat::Webp));
        assert!(matches!(
            sniff(b"\0\0\0\x1cftypavif"),
            Err(Refusal::Unsupported(_))
        ));
        assert_eq!(
            sniff(b"<!doctype html><html>"),
            Err(Refusal::NotAnImage("text or markup"))
        );
        assert_eq!(sniff(b""), Err(Refusal::NotAnImage("empty body")));
        assert_eq!(
            sniff(b"\x00\x01\x02"),
            Err(Refusal::NotAnImage("unknown magic bytes"))
        );
        assert_eq!(
            sniff(b"RIFF\0\0\0\0WAVE"),
            Err(Refusal::NotAnImage("unknown magic bytes"))
        );
    }
}
