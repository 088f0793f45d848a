//! The filter's JSON configuration (Envoy `configuration`, Istio `pluginConfig`), parsed and
//! validated once in `on_configure`. Unknown keys are errors that name the key, so a typo
//! refuses to start instead of silently running with a default.

use rendition_shared::request::DEFAULT_IMAGE_EXTENSIONS;
use serde::Deserialize;

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct FilterConfig {
    /// Add the `x-rendition: miss|hit|bypass; mask=0x..; variant=0x..` response header.
    pub debug_header: bool,
    /// Path extensions treated as images (case-insensitive, without the dot).
    pub image_extensions: Vec<String>,
}

impl Default for FilterConfig {
    fn default() -> Self {
        FilterConfig {
            debug_header: true,
            image_extensions: DEFAULT_IMAGE_EXTENSIONS
                .iter()
                .map(|e| (*e).to_owned())
                .collect(),
        }
    }
}

impl FilterConfig {
    /// Parses and validates; an empty configuration means all defaults.
    pub fn parse(bytes: &[u8]) -> Result<FilterConfig, String> {
        let config: FilterConfig = if bytes.iter().all(u8::is_ascii_whitespace) {
            FilterConfig::default()
        } else {
            serde_json::from_slice(bytes).map_err(|e| format!("configuration: {e}"))?
        };
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), String> {
        if self.image_extensions.is_empty() {
            return Err("configuration: image_extensions: must list at least one extension".into());
        }
        for ext in &self.image_extensions {
            if ext.is_empty()
                || ext.starts_with('.')
                || !ext.bytes().all(|b| b.is_ascii_alphanumeric())
            {
                return Err(format!(
                    "configuration: image_extensions: {ext:?} is not a bare extension like \"jpg\""
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_means_defaults() {
        assert_eq!(FilterConfig::parse(b""), Ok(FilterConfig::default()));
        assert_eq!(FilterConfig::parse(b"{}"), Ok(FilterConfig::default()));
    }

    #[test]
    fn errors_name_the_key() {
        let e = FilterConfig::parse(br#"{"debug_headr": false}"#).unwrap_err();
        assert!(e.contains("debug_headr"), "{e}");
        let e = FilterConfig::parse(br#"{"image_extensions": [".jpg"]}"#).unwrap_err();
        assert!(e.contains("image_extensions"), "{e}");
        let e = FilterConfig::parse(br#"{"debug_header": "yes"}"#).unwrap_err();
        assert!(e.contains("configuration"), "{e}");
    }
}
