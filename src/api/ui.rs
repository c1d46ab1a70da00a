//! The control room (`/`) and the crowd board (`/board`): static files embedded in the binary,
//! served from a fixed table by name — no file system access, so no path can reach anything else.
//! The pages hold no data; they call the API with the operator's token (the board: the public
//! routes only).

use axum::extract::Path;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::ApiError;

/// (name under `/ui/`, content type, body).
const FILES: &[(&str, &str, &str)] = &[
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("../../ui/app.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("../../ui/style.css"),
    ),
    (
        "board.js",
        "text/javascript; charset=utf-8",
        include_str!("../../ui/board.js"),
    ),
    (
        "board.css",
        "text/css; charset=utf-8",
        include_str!("../../ui/board.css"),
    ),
    (
        "docs.js",
        "text/javascript; charset=utf-8",
        include_str!("../../ui/docs.js"),
    ),
    (
        "icon.svg",
        "image/svg+xml",
        include_str!("../../ui/icon.svg"),
    ),
];

const INDEX: &str = include_str!("../../ui/index.html");
const BOARD: &str = include_str!("../../ui/board.html");
pub(super) const DOCS: &str = include_str!("../../ui/docs.html");

/// Scripts and styles from this origin only; data from this origin only.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

pub(super) fn page(content_type: &'static str, body: &'static str) -> Response {
    let mut res = ([(header::CONTENT_TYPE, content_type)], body).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    // Revalidate on every load so an upgrade is picked up at once.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    res
}

/// The control room: county overview and area detail (Chinese first, English switch).
#[utoipa::path(get, path = "/", tag = "ui", security(()),
    responses((status = 200, description = "The control-room page", content_type = "text/html", body = String)))]
pub async fn index() -> Response {
    page("text/html; charset=utf-8", INDEX)
}

/// The crowd board for LED screens at the gates (`?area=ID` for one area).
#[utoipa::path(get, path = "/board", tag = "ui", security(()),
    responses((status = 200, description = "The crowd-board page", content_type = "text/html", body = String)))]
pub async fn board() -> Response {
    page("text/html; charset=utf-8", BOARD)
}

/// The pages' scripts, styles and icon.
#[utoipa::path(get, path = "/ui/{file}", tag = "ui", security(()),
    params(("file" = String, Path, description = "app.js, style.css, board.js, board.css, docs.js or icon.svg")),
    responses((status = 200, description = "The file",
            content((String = "text/javascript"), (String = "text/css"), (String = "image/svg+xml"))),
        (status = 404, description = "No such file", body = super::ErrorBody)))]
pub async fn file(Path(name): Path<String>) -> Result<Response, ApiError> {
    FILES
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, ct, body)| page(ct, body))
        .ok_or_else(|| ApiError::NotFound(format!("no file {name:?}")))
}
