//! A header map read from the host in one call and used in place.
//!
//! The SDK's `get_http_request_headers` turns every name and value into its own `String`
//! (through `from_utf8_lossy`): two allocations per header, about twenty per request, which
//! made allocation the largest share of the filter's instructions (callgrind on
//! `per_request_cost`). Here the host's serialized map is kept as the one buffer the host
//! allocated, and names and values are slices of it. There is no lookup by name on purpose:
//! each would walk the map again, so callers take what they need in one pass over [`HeaderMap::iter`]. Values stay bytes, so a header that is
//! not UTF-8 is passed back unchanged by a bulk write instead of being mangled.
//!
//! Serialized form (proxy-wasm ABI 0.2): `count: u32`, then `count` pairs of
//! `(name_len: u32, value_len: u32)`, then each name and value followed by a NUL byte; all
//! little-endian.

use proxy_wasm::types::{MapType, Status};

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_get_header_map_pairs(
        map_type: MapType,
        return_map_data: *mut *mut u8,
        return_map_size: *mut usize,
    ) -> Status;
}

/// One header map, as the host serialized it.
pub struct HeaderMap {
    buf: Vec<u8>,
    count: usize,
}

impl HeaderMap {
    /// Reads `map_type` with one host call. A failed call or a malformed buffer reads as an
    /// empty map (the filter then leaves the request alone): trapping would take the VM down.
    pub fn read(map_type: MapType) -> HeaderMap {
        let mut data: *mut u8 = std::ptr::null_mut();
        let mut size: usize = 0;
        // SAFETY: the host writes a pointer it obtained from `proxy_on_memory_allocate`
        // (a boxed slice of exactly `size` bytes) and its size, or leaves them null and 0.
        let status = unsafe { proxy_get_header_map_pairs(map_type, &mut data, &mut size) };
        if status != Status::Ok || data.is_null() {
            return HeaderMap::empty();
        }
        // SAFETY: see above; ownership passes to us, as in the SDK's own `get_map`.
        let buf = unsafe { Vec::from_raw_parts(data, size, size) };
        HeaderMap::from_serialized(buf)
    }

    /// Wraps a serialized map after checking that every length fits in the buffer.
    pub fn from_serialized(buf: Vec<u8>) -> HeaderMap {
        // Each pair takes at least 10 bytes (two lengths, two NULs): a larger count is a lie,
        // and checking it first keeps `8 * count` from overflowing on wasm32.
        let Some(count) = read_u32(&buf, 0).filter(|&c| c <= buf.len() / 10) else {
            return HeaderMap::empty();
        };
        let map = HeaderMap { buf, count };
        let data_at = 4 + 8 * map.count;
        let needed = (0..map.count).try_fold(data_at, |at, i| {
            let (n, v) = map.lengths(i)?;
            at.checked_add(n)?.checked_add(v)?.checked_add(2)
        });
        match needed {
            Some(end) if end <= map.buf.len() => map,
            _ => HeaderMap::empty(),
        }
    }

    fn empty() -> HeaderMap {
        HeaderMap {
            buf: Vec::new(),
            count: 0,
        }
    }

    fn lengths(&self, i: usize) -> Option<(usize, usize)> {
        let at = 4 + 8 * i;
        Some((read_u32(&self.buf, at)?, read_u32(&self.buf, at + 4)?))
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Every (name, value) in order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        let mut at = 4 + 8 * self.count;
        (0..self.count).map_while(move |i| {
            let (n, v) = self.lengths(i)?;
            let name = self.buf.get(at..at + n)?;
            let value = self.buf.get(at + n + 1..at + n + 1 + v)?;
            at += n + v + 2;
            Some((name, value))
        })
    }
}

fn read_u32(buf: &[u8], at: usize) -> Option<usize> {
    let bytes: [u8; 4] = buf.get(at..at.checked_add(4)?)?.try_into().ok()?;
    usize::try_from(u32::from_le_bytes(bytes)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ABI's layout, written out by hand (the golden form the host sends).
    fn serialize(pairs: &[(&[u8], &[u8])]) -> Vec<u8> {
        let mut out = (pairs.len() as u32).to_le_bytes().to_vec();
        for (n, v) in pairs {
            out.extend_from_slice(&(n.len() as u32).to_le_bytes());
            out.extend_from_slice(&(v.len() as u32).to_le_bytes());
        }
        for (n, v) in pairs {
            out.extend_from_slice(n);
            out.push(0);
            out.extend_from_slice(v);
            out.push(0);
        }
        out
    }

    #[test]
    fn reads_pairs_in_place() {
        let pairs: [(&[u8], &[u8]); 3] = [
            (b":path", b"/img/a.jpg"),
            (b"accept", b""),
            (b"x-odd", b"caf\xe9"),
        ];
        let map = HeaderMap::from_serialized(serialize(&pairs));
        assert_eq!(map.len(), 3);
        assert_eq!(
            map.iter().collect::<Vec<_>>(),
            pairs.to_vec(),
            "values stay bytes"
        );
    }

    #[test]
    fn golden_bytes() {
        let buf = serialize(&[(b"a", b"bc")]);
        assert_eq!(
            buf,
            [1, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, b'a', 0, b'b', b'c', 0]
        );
        let map = HeaderMap::from_serialized(buf);
        assert_eq!(map.iter().collect::<Vec<_>>(), [(&b"a"[..], &b"bc"[..])]);
    }

    #[test]
    fn malformed_buffers_read_as_empty() {
        let good = serialize(&[(b"name", b"value")]);
        for cut in 0..good.len() {
            assert!(
                HeaderMap::from_serialized(good[..cut].to_vec()).is_empty(),
                "cut at {cut}"
            );
        }
        let mut huge = good.clone();
        huge[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(HeaderMap::from_serialized(huge).is_empty());
        let mut many = good;
        many[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(HeaderMap::from_serialized(many).is_empty());
    }
}
