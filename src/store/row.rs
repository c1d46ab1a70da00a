//! How rows become values, once: a [`FromRow`] type reads its columns by name (never by position)
//! and lists them, so `tests/store.rs` checks every mapping against its prepared statement
//! ([`MAPPINGS`]): a renamed or dropped column fails a test, not a request.

use tokio_postgres::types::{FromSql, ToSql};
use tokio_postgres::{GenericClient, Row, ToStatement};

use super::StoreError;

/// A value built from one row.
pub trait FromRow: Sized {
    /// The columns [`FromRow::from_row`] reads.
    const COLUMNS: &'static [&'static str];
    fn from_row(row: &Row) -> Result<Self, tokio_postgres::Error>;
}

/// `FromRow` for a struct whose fields are its columns: `from_row!(T { a, b = "column_b" })`
/// (a field named like its column, or `field = "column"`).
macro_rules! from_row {
    ($t:ident { $($field:ident $(= $col:literal)?),* $(,)? }) => {
        impl $crate::store::row::FromRow for $t {
            const COLUMNS: &'static [&'static str] = &[$($crate::store::row::from_row!(@col $field $($col)?)),*];
            fn from_row(r: &tokio_postgres::Row) -> Result<Self, tokio_postgres::Error> {
                Ok($t { $($field: r.try_get($crate::store::row::from_row!(@col $field $($col)?))?),* })
            }
        }
    };
    (@col $field:ident $col:literal) => { $col };
    (@col $field:ident) => { stringify!($field) };
}
pub(crate) use from_row;

/// Every row of `sql` as `T`.
pub async fn query_as<T: FromRow, S>(
    client: &impl GenericClient,
    sql: &S,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<T>, StoreError>
where
    S: ?Sized + ToStatement + Sync + Send,
{
    client
        .query(sql, params)
        .await?
        .iter()
        .map(|r| T::from_row(r).map_err(StoreError::from))
        .collect()
}

/// The row of `sql`, if any, as `T`.
pub async fn query_opt_as<T: FromRow, S>(
    client: &impl GenericClient,
    sql: &S,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Option<T>, StoreError>
where
    S: ?Sized + ToStatement + Sync + Send,
{
    match client.query_opt(sql, params).await? {
        Some(r) => Ok(Some(T::from_row(&r)?)),
        None => Ok(None),
    }
}

/// The one row of `sql` (an `INSERT … RETURNING`) as `T`.
pub async fn query_one_as<T: FromRow, S>(
    client: &impl GenericClient,
    sql: &S,
    params: &[&(dyn ToSql + Sync)],
) -> Result<T, StoreError>
where
    S: ?Sized + ToStatement + Sync + Send,
{
    Ok(T::from_row(&client.query_one(sql, params).await?)?)
}

/// The first column of the row of `sql` (a count, an id, a flag).
pub async fn query_scalar<T>(
    client: &impl GenericClient,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<T, StoreError>
where
    T: for<'a> FromSql<'a>,
{
    Ok(client.query_one(sql, params).await?.try_get(0)?)
}

/// The first column of the row of `sql`, if there is a row.
pub async fn query_opt_scalar<T>(
    client: &impl GenericClient,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Option<T>, StoreError>
where
    T: for<'a> FromSql<'a>,
{
    match client.query_opt(sql, params).await? {
        Some(r) => Ok(Some(r.try_get(0)?)),
        None => Ok(None),
    }
}
