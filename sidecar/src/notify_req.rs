//! `POST /notify`'s body, parsed and validated without I/O, so it can be tested and fuzzed
//! alone (`fuzz/fuzz_targets/notify_parse.rs`). The handler in [`crate::server`] does the rest,
//! which needs the service: the origin check, the warmup switch, the store's fast path.

use crate::server::Notify;
use crate::worker::Requested;
use rendition_shared::{CapabilityMask, KeyError, MaskError, SourceKey};

/// Why a body is not a notify.
#[derive(Debug, PartialEq, Eq)]
pub enum NotifyError {
    /// Not JSON `{host, path, mask[, etag, last_modified]}`.
    Body,
    /// The host and path make no source key.
    Key(KeyError),
}

/// A notify body whose source key is valid. Its mask is only checked after the origin (the
/// handler answers an unconfigured host with 403 before an invalid mask with 400).
#[derive(Debug)]
pub struct ParsedNotify {
    pub notify: Notify,
    pub key: SourceKey,
    pub requested: Result<Requested, MaskError>,
}

/// The body as the handler's `Json<Notify>` extractor reads it, then [`validate`]d.
pub fn parse(body: &[u8]) -> Result<ParsedNotify, NotifyError> {
    let axum::Json(notify) =
        axum::Json::<Notify>::from_bytes(body).map_err(|_| NotifyError::Body)?;
    let (key, requested) = validate(&notify).map_err(NotifyError::Key)?;
    Ok(ParsedNotify {
        notify,
        key,
        requested,
    })
}

/// The source key of a notify, and what it asks for: the warmup sentinel, or a valid mask
/// reduced to its image slot (transfer-encoding bits cleared).
pub fn validate(n: &Notify) -> Result<(SourceKey, Result<Requested, MaskError>), KeyError> {
    let key = SourceKey::new(&n.host, &n.path)?;
    let requested = if n.mask == CapabilityMask::WARMUP_SENTINEL {
        Ok(Requested::Warmup)
    } else {
        CapabilityMask::from_bits(n.mask).map(|m| Requested::Slot(m.slot()))
    };
    Ok((key, requested))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(body: &str) -> ParsedNotify {
        match parse(body.as_bytes()) {
            Ok(p) => p,
            Err(e) => panic!("{body}: {e:?}"),
        }
    }

    #[test]
    fn bodies() {
        let p = parse_ok(r#"{"host":"Shop.Example:443","path":"/a.jpg?b=1&a=2","mask":137}"#);
        assert_eq!(p.key.as_str(), "shop.example/a.jpg?a=2&b=1");
        // 0x89 = webp, desktop, 1x, brotli: the slot drops the transfer encoding
        let slot = CapabilityMask::from_bits(0x09).ok();
        assert_eq!(p.requested.ok(), slot.map(Requested::Slot));
        assert_eq!(p.notify.etag, None);

        let p = parse_ok(
            r#"{"host":"a","path":"/b.png","mask":4294967294,"etag":"\"x\"","last_modified":null}"#,
        );
        assert_eq!(p.requested, Ok(Requested::Warmup));
        assert_eq!(p.notify.etag.as_deref(), Some("\"x\""));

        let p = parse_ok(r#"{"host":"a","path":"/b.png","mask":12}"#);
        assert_eq!(p.requested, Err(MaskError::InvalidViewport));
    }

    #[test]
    fn refusals() {
        for body in [
            "",
            "{}",
            r#"{"host":"a","path":"/b"}"#,
            r#"{"host":"a","path":"/b","mask":-1}"#,
            r#"{"host":"a","path":"/b","mask":4294967296}"#,
            r#"{"host":"a","path":"/b","mask":1,"extra":1}"#,
            r#"{"host":"a","path":"/b","mask":1} trailing"#,
        ] {
            assert_eq!(
                parse(body.as_bytes()).err(),
                Some(NotifyError::Body),
                "{body}"
            );
        }
        assert_eq!(
            parse(br#"{"host":"a","path":"b","mask":1}"#).err(),
            Some(NotifyError::Key(KeyError::RelativePath))
        );
        assert_eq!(
            parse(br#"{"host":"","path":"/b","mask":1}"#).err(),
            Some(NotifyError::Key(KeyError::EmptyHost))
        );
    }
}
