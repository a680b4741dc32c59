//! Static files embedded in the binary and served from `/static/<name>`.
//!
//! Each has a strong ETag (a hash of its bytes) so browsers revalidate cheaply after an upgrade, and
//! a day of `max-age` so a page load does not ask at all in between.

use std::sync::OnceLock;

/// One embedded file.
pub struct Asset {
    pub name: &'static str,
    pub content_type: &'static str,
    pub body: &'static [u8],
}

impl Asset {
    /// A strong validator: the first 16 bytes of the SHA-256 of the body, quoted.
    pub fn etag(&self) -> &'static str {
        static ETAGS: OnceLock<Vec<String>> = OnceLock::new();
        let etags = ETAGS.get_or_init(|| {
            ASSETS
                .iter()
                .map(|asset| {
                    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, asset.body);
                    format!("\"{}\"", hex::encode(&digest.as_ref()[..16]))
                })
                .collect()
        });
        let index = ASSETS
            .iter()
            .position(|asset| asset.name == self.name)
            .expect("an asset comes from ASSETS");
        &etags[index]
    }
}

/// `cache-control` for `/static` responses.
pub const CACHE_CONTROL: &str = "public, max-age=86400";

static ASSETS: &[Asset] = &[
    Asset {
        name: "htmx.min.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../assets/htmx.min.js"),
    },
    Asset {
        name: "console.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../assets/console.js"),
    },
    Asset {
        name: "console.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../assets/console.css"),
    },
];

/// The asset called `name` (the part of the path after `/static/`), if there is one.
pub fn asset(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|asset| asset.name == name)
}

/// True when the request's `If-None-Match` already names this asset's ETag (answer 304).
pub fn not_modified(asset: &Asset, if_none_match: Option<&str>) -> bool {
    if_none_match.is_some_and(|value| {
        value
            .split(',')
            .any(|tag| tag.trim().trim_start_matches("W/") == asset.etag())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_is_found_by_name_and_has_its_own_etag() {
        let htmx = asset("htmx.min.js").unwrap();
        let css = asset("console.css").unwrap();
        assert!(htmx.body.starts_with(b"var htmx="));
        assert_ne!(htmx.etag(), css.etag());
        assert!(asset("../Cargo.toml").is_none());
    }

    #[test]
    fn if_none_match_is_compared_per_tag() {
        let css = asset("console.css").unwrap();
        assert!(not_modified(css, Some(&format!("\"x\", {}", css.etag()))));
        assert!(!not_modified(css, Some("\"x\"")));
        assert!(!not_modified(css, None));
    }
}
