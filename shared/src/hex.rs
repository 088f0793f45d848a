//! Lower-case hex for the values that go on the wire per request: the source key and the slot
//! of the hit route's header, and the masks of the debug header.
//!
//! Why not `core::fmt`: the filter writes these on every hit, and `{:02x}` per byte went
//! through the formatting machinery 16 times for one key, about 4,700 instructions natively
//! (callgrind on the filter's `per_request_cost` load), the largest single piece of a hit's own
//! work. Writing digits from a table is a few instructions per digit.

const DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Appends two digits per byte, in order (`[0x0a, 0xff]` -> `0aff`).
pub fn push_bytes(out: &mut String, bytes: &[u8]) {
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
}

/// Appends `value` with no leading zeros beyond `min_digits` (`{:x}` is `min_digits` 1,
/// `{:02x}` is 2).
pub fn push_u32(out: &mut String, value: u32, min_digits: u32) {
    let digits = (32 - value.leading_zeros())
        .div_ceil(4)
        .max(min_digits)
        .min(8);
    for i in (0..digits).rev() {
        out.push(char::from(DIGITS[((value >> (4 * i)) & 0xf) as usize]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agrees_with_core_fmt() {
        for v in [
            0u32,
            1,
            0x9,
            0xa,
            0x10,
            0xff,
            0x100,
            0xabcd,
            0xffff_fffe,
            u32::MAX,
        ] {
            for min in 1..=3 {
                let mut s = String::new();
                push_u32(&mut s, v, min);
                let want = match min {
                    1 => format!("{v:x}"),
                    2 => format!("{v:02x}"),
                    _ => format!("{v:03x}"),
                };
                assert_eq!(s, want, "{v:#x} min {min}");
            }
        }
        let mut s = String::new();
        push_bytes(&mut s, &[0x00, 0x0a, 0xa0, 0xff]);
        assert_eq!(s, "000aa0ff");
    }
}
