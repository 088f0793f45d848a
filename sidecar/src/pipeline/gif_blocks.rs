//! The block structure of a GIF file, walked without decompressing anything. Two steps read
//! it: [`super::limits`] (every frame's rectangle, before any decoding) and [`super::decode`]
//! (the loop count, which the `image` decoder reports wrongly for files without one).
//!
//! A GIF is a header, a logical screen descriptor and its optional colour table, then blocks
//! up to a trailer (`0x3B`): extensions (`0x21`, a label, then data sub-blocks) and images
//! (`0x2C`, a 9-byte descriptor, an optional local colour table, the LZW minimum code size,
//! then data sub-blocks). A sub-block is a length byte and that many bytes; length 0 ends the
//! run.

/// One block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Block<'a> {
    /// An extension: its label and its data sub-blocks.
    Extension { label: u8, data: SubBlocks<'a> },
    /// An image (a frame): its rectangle's size.
    Image { width: u32, height: u32 },
}

/// The logical screen size and the blocks after it; `Err` when the file is too short to
/// hold a screen descriptor.
pub fn walk(b: &[u8]) -> Result<((u32, u32), Blocks<'_>), &'static str> {
    if b.len() < 13 {
        return Err("truncated header");
    }
    let width = u32::from(u16::from_le_bytes([b[6], b[7]]));
    let height = u32::from(u16::from_le_bytes([b[8], b[9]]));
    let mut at = 13;
    if b[10] & 0x80 != 0 {
        at += colour_table_len(b[10]);
    }
    Ok(((width, height), Blocks { b, at, done: false }))
}

fn colour_table_len(flags: u8) -> usize {
    3 * (1 << ((flags & 0x07) + 1))
}

/// The blocks of a GIF, in file order. The walk ends at the trailer or at the end of a
/// truncated file (the decoder reports truncation); a byte that starts no block, or
/// sub-blocks that run past the end, are errors.
#[derive(Clone, Debug)]
pub struct Blocks<'a> {
    b: &'a [u8],
    at: usize,
    done: bool,
}

impl<'a> Blocks<'a> {
    /// Skips the sub-blocks starting at `at`; returns where the next block starts.
    fn skip_sub_blocks(&self, mut at: usize) -> Result<usize, &'static str> {
        loop {
            let n = usize::from(*self.b.get(at).ok_or("truncated data")?);
            at += 1 + n;
            if n == 0 {
                return Ok(at);
            }
        }
    }

    fn next_block(&mut self) -> Result<Option<Block<'a>>, &'static str> {
        let b = self.b;
        match b.get(self.at) {
            Some(0x3B) | None => Ok(None),
            Some(0x21) => {
                let label = *b.get(self.at + 1).ok_or("truncated data")?;
                let start = self.at + 2;
                let end = self.skip_sub_blocks(start)?;
                self.at = end;
                Ok(Some(Block::Extension {
                    label,
                    data: SubBlocks {
                        b: b.get(start..end).unwrap_or_default(),
                    },
                }))
            }
            Some(0x2C) => {
                let d = b
                    .get(self.at + 1..self.at + 10)
                    .ok_or("truncated image descriptor")?;
                let width = u32::from(u16::from_le_bytes([d[4], d[5]]));
                let height = u32::from(u16::from_le_bytes([d[6], d[7]]));
                let flags = d[8];
                let mut at = self.at + 10;
                if flags & 0x80 != 0 {
                    at += colour_table_len(flags);
                }
                self.at = self.skip_sub_blocks(at + 1)?; // LZW minimum code size, then data
                Ok(Some(Block::Image { width, height }))
            }
            Some(_) => Err("unknown block"),
        }
    }
}

impl<'a> Iterator for Blocks<'a> {
    type Item = Result<Block<'a>, &'static str>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let next = self.next_block().transpose();
        self.done = !matches!(next, Some(Ok(_)));
        next
    }
}

/// The data sub-blocks of an extension, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubBlocks<'a> {
    b: &'a [u8],
}

impl<'a> Iterator for SubBlocks<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let (&n, rest) = self.b.split_first()?;
        let n = usize::from(n);
        if n == 0 || rest.len() < n {
            self.b = &[];
            return None;
        }
        let (block, rest) = rest.split_at(n);
        self.b = rest;
        Some(block)
    }
}

/// The loop count of the NETSCAPE2.0 application extension (or its ANIMEXTS1.0 twin):
/// `Some(0)` loops forever, `Some(n)` repeats n times after the first play; `None` when the
/// file has none, which browsers play once.
pub fn loop_count(b: &[u8]) -> Option<u16> {
    let (_, blocks) = walk(b).ok()?;
    for block in blocks {
        let Ok(Block::Extension {
            label: 0xFF,
            mut data,
        }) = block
        else {
            continue;
        };
        if !matches!(data.next(), Some(b"NETSCAPE2.0" | b"ANIMEXTS1.0")) {
            continue;
        }
        if let Some(&[1, lo, hi, ..]) = data.next() {
            return Some(u16::from_le_bytes([lo, hi]));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 8x8 screen, no colour table, then `body` and the trailer.
    fn gif(body: &[u8]) -> Vec<u8> {
        [
            b"GIF89a\x08\x00\x08\x00\x00\x00\x00".as_slice(),
            body,
            b"\x3b",
        ]
        .concat()
    }

    const FRAME_2X3: &[u8] = b"\x2c\0\0\0\0\x02\x00\x03\x00\x00\x02\x02\x44\x01\x00";

    #[test]
    fn frames_and_extensions_in_order() {
        let g = gif(&[b"\x21\xf9\x04\x00\x05\x00\x00\x00", FRAME_2X3].concat());
        let ((w, h), blocks) = walk(&g).unwrap();
        assert_eq!((w, h), (8, 8));
        let blocks: Vec<_> = blocks.collect::<Result<_, _>>().unwrap();
        assert_eq!(blocks.len(), 2);
        let Block::Extension { label, data } = &blocks[0] else {
            panic!("{blocks:?}")
        };
        assert_eq!(*label, 0xF9);
        assert_eq!(data.clone().collect::<Vec<_>>(), vec![&[0, 5, 0, 0][..]]);
        assert_eq!(
            blocks[1],
            Block::Image {
                width: 2,
                height: 3
            }
        );
        assert_eq!(
            walk(&g[..g.len() - 4]).unwrap().1.last(),
            Some(Err("truncated data"))
        );
    }

    #[test]
    fn loop_counts() {
        let netscape = |n: u16| {
            let [lo, hi] = n.to_le_bytes();
            [b"\x21\xff\x0bNETSCAPE2.0\x03\x01".as_slice(), &[lo, hi, 0]].concat()
        };
        assert_eq!(loop_count(&gif(FRAME_2X3)), None);
        assert_eq!(
            loop_count(&gif(&[&netscape(0), FRAME_2X3].concat())),
            Some(0)
        );
        assert_eq!(
            loop_count(&gif(&[&netscape(3), FRAME_2X3].concat())),
            Some(3)
        );
        // After the first frame, as some encoders write it.
        assert_eq!(
            loop_count(&gif(&[FRAME_2X3, &netscape(7), FRAME_2X3].concat())),
            Some(7)
        );
        // Another application extension is not a loop count.
        let other = b"\x21\xff\x0bXMP DataXMP\x03\x01\x05\x00\x00";
        assert_eq!(
            loop_count(&gif(&[other.as_slice(), FRAME_2X3].concat())),
            None
        );
    }
}
