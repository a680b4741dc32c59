//! `GET /static/<name>`: the console's embedded files (htmx, stylesheet, enhancement script),
//! cacheable for a day and revalidated by ETag (304 when the browser's copy is current).

use super::{ApiError, Reply, Request, Response};
use cullis_console::assets::{self, CACHE_CONTROL};
use cullis_console::headers::SECURITY_HEADERS;
use http::{Method, StatusCode};

pub fn serve(request: &Request, name: &str) -> Reply {
    if request.method != Method::GET {
        return super::router::not_allowed();
    }
    let Some(asset) = assets::asset(name) else {
        return ApiError::not_found("Not Found").into();
    };
    // The console's headers, except that these files may be cached (they change only with
    // the binary, and the ETag says when).
    let mut headers: Vec<(&'static str, String)> = SECURITY_HEADERS
        .iter()
        .filter(|(header, _)| !header.eq_ignore_ascii_case("cache-control"))
        .map(|(header, value)| (*header, (*value).to_owned()))
        .collect();
    headers.push(("Cache-Control", CACHE_CONTROL.to_owned()));
    headers.push(("ETag", asset.etag().to_owned()));
    if assets::not_modified(asset, request.header("if-none-match")) {
        return Response {
            status: StatusCode::NOT_MODIFIED,
            headers,
            body: Vec::new(),
            content_type: asset.content_type,
        }
        .into();
    }
    Response {
        status: StatusCode::OK,
        headers,
        body: asset.body.to_vec(),
        content_type: asset.content_type,
    }
    .into()
}
