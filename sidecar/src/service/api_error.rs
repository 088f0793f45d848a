//! The error every route answers with: a status and a message that is safe to show a client.
//! What went wrong inside is logged where it happened, never returned.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

/// A response error: status and a public message.
#[derive(Debug)]
pub struct ApiError(pub StatusCode, pub &'static str);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.0,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("{}\n", self.1),
        )
            .into_response()
    }
}
