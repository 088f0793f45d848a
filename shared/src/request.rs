//! Which requests the filter may touch (docs/filter.md, "A request", steps 1-2), decided without I/O.
//!
//! A request is a candidate when it is a GET or HEAD, carries no `Authorization` (a response
//! to a credentialed request may be personal, so it is never stored or served from the store),
//! and its path ends in one of the configured image extensions. Whether the *response* is a
//! publicly cacheable image is decided later, on the response headers.

/// Prefix of the headers the filter uses internally. Any such header a client sends is removed
/// before routing, so a client can never pick the sidecar route or a variant by itself.
pub const INTERNAL_HEADER_PREFIX: &str = "x-rendition-";

/// Image extensions optimized by default (case-insensitive).
pub const DEFAULT_IMAGE_EXTENSIONS: [&str; 6] = ["jpg", "jpeg", "png", "gif", "webp", "avif"];

/// Why a request is left alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bypass {
    Method,
    Authorization,
    NotAnImagePath,
}

impl Bypass {
    pub const fn name(self) -> &'static str {
        match self {
            Self::Method => "method",
            Self::Authorization => "authorization",
            Self::NotAnImagePath => "not_image_path",
        }
    }
}

/// Whether a header name is in the internal namespace (ASCII case-insensitive).
pub fn is_internal_header(name: impl AsRef<[u8]>) -> bool {
    name.as_ref()
        .get(..INTERNAL_HEADER_PREFIX.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(INTERNAL_HEADER_PREFIX.as_bytes()))
}

/// Decides whether a request is an image request the filter may optimize.
pub fn classify<S: AsRef<str>>(
    method: &str,
    path: &str,
    has_authorization: bool,
    image_extensions: &[S],
) -> Result<(), Bypass> {
    if !(method.eq_ignore_ascii_case("GET") || method.eq_ignore_ascii_case("HEAD")) {
        return Err(Bypass::Method);
    }
    if has_authorization {
        return Err(Bypass::Authorization);
    }
    if !has_image_extension(path, image_extensions) {
        return Err(Bypass::NotAnImagePath);
    }
    Ok(())
}

/// Whether the path (query and fragment ignored) ends in `.ext` for one of `extensions`.
pub fn has_image_extension<S: AsRef<str>>(path: &str, extensions: &[S]) -> bool {
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let file = path.rsplit('/').next().unwrap_or_default();
    match file.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => extensions
            .iter()
            .any(|e| e.as_ref().eq_ignore_ascii_case(ext)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXT: [&str; 6] = DEFAULT_IMAGE_EXTENSIONS;

    #[test]
    fn image_paths() {
        assert!(has_image_extension("/a/b.JPG", &EXT));
        assert!(has_image_extension("/a/b.png?v=2", &EXT));
        assert!(!has_image_extension("/a/b.png/", &EXT));
        assert!(!has_image_extension("/a/.png", &EXT));
        assert!(!has_image_extension("/a/png", &EXT));
        assert!(!has_image_extension("/index.html?x=.jpg", &EXT));
    }

    #[test]
    fn classification() {
        assert_eq!(classify("GET", "/a.jpg", false, &EXT), Ok(()));
        assert_eq!(classify("head", "/a.jpg", false, &EXT), Ok(()));
        assert_eq!(classify("POST", "/a.jpg", false, &EXT), Err(Bypass::Method));
        assert_eq!(
            classify("GET", "/a.jpg", true, &EXT),
            Err(Bypass::Authorization)
        );
        assert_eq!(
            classify("GET", "/a.css", false, &EXT),
            Err(Bypass::NotAnImagePath)
        );
    }

    #[test]
    fn internal_headers() {
        assert!(is_internal_header("x-rendition-route"));
        assert!(is_internal_header("X-Rendition-Anything"));
        assert!(!is_internal_header("x-rendition"));
        assert!(!is_internal_header("x-render"));
    }
}
