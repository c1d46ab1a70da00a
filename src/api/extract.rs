//! The API's extractors: axum's `Query`, `Path` and `Json` with their refusals as [`ApiError`]s
//! (400 for a query or path, 422 for a body, the reason in the usual error body), and a pooled
//! database connection ([`DbConn`], 503 when the pool cannot give one). Handlers take these and
//! never map a rejection themselves (the shape of axum's `customize-extractor-error` and
//! `tokio-postgres` examples, without the macro).

use std::ops::{Deref, DerefMut};

use axum::Json;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::response::Response;
use serde::de::DeserializeOwned;

use super::{ApiError, AppState};
use crate::store::StoreError;
use crate::store::replica::ReadFrom;

/// A query string, or 400 with axum's reason.
pub struct ApiQuery<T>(pub T);

/// Path parameters, or 400 with axum's reason.
pub struct ApiPath<T>(pub T);

/// A JSON body, or 422 with axum's reason (413 beyond the body limit stays the limit layer's).
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(v)) => Ok(Self(v)),
            Err(e) => Err(ApiError::BadRequest(e.body_text())),
        }
    }
}

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(v)) => Ok(Self(v)),
            Err(e) => Err(ApiError::BadRequest(e.body_text())),
        }
    }
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Self(v)),
            Err(e) => Err(ApiError::Unprocessable(e.body_text())),
        }
    }
}

/// A connection for a history read ([`crate::store::replica`]): the replica's while it is
/// current enough, else the primary's; [`HistoryConn::mark`] says which on the response.
pub struct HistoryConn(pub deadpool_postgres::Object, pub ReadFrom);

impl FromRequestParts<AppState> for HistoryConn {
    type Rejection = ApiError;

    async fn from_request_parts(_: &mut Parts, st: &AppState) -> Result<Self, ApiError> {
        let (pool, from) = st.reads.choose();
        let conn = pool.get().await.map_err(StoreError::from)?;
        Ok(Self(conn, from))
    }
}

impl Deref for HistoryConn {
    type Target = tokio_postgres::Client;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

/// `X-Visitorflow-Read-From` on `resp`: `primary`, `replica; lag=0.120`, or
/// `primary; replica-behind=42.000` when the replica was too far behind to be read.
pub fn read_from(mut resp: Response, from: ReadFrom) -> Response {
    if let Ok(v) = axum::http::HeaderValue::from_str(&from.header()) {
        resp.headers_mut().insert(READ_FROM, v);
    }
    resp
}

pub const READ_FROM: &str = "x-visitorflow-read-from";

/// A connection from the service's pool for the length of a request.
pub struct DbConn(pub deadpool_postgres::Object);

impl FromRequestParts<AppState> for DbConn {
    type Rejection = ApiError;

    async fn from_request_parts(_: &mut Parts, st: &AppState) -> Result<Self, ApiError> {
        let conn = st.pool.get().await.map_err(StoreError::from)?;
        Ok(Self(conn))
    }
}

/// The connection itself: handlers pass `&*conn` where a `GenericClient` is asked for.
impl Deref for DbConn {
    type Target = tokio_postgres::Client;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl DerefMut for DbConn {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}
