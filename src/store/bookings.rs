//! Bookings as ticketing systems report them: one transaction per intake that locks the area,
//! reads the stored versions, applies [`admission::merge`] (the one place the decision is made)
//! and writes what changed; and the per-slot counts the API and alerting read.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use tokio_postgres::{Client, GenericClient, Row};

use super::row::{FromRow, from_row, query_as, query_scalar};
use super::{StoreError, sql};
use crate::admission::{self, Booking, BookingStatus, Merge, SlotCounts};

/// What one intake did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Applied {
    pub inserted: u32,
    pub updated: u32,
    /// The same version again (a retry).
    pub duplicates: u32,
    /// Older than the stored version (arrived out of order).
    pub stale: u32,
    /// When the area's booking data was last refreshed (this intake).
    pub received_at: Option<DateTime<Utc>>,
}

impl FromRow for Booking {
    const COLUMNS: &'static [&'static str] =
        &["booking_id", "version", "day", "slot", "people", "status"];

    fn from_row(r: &Row) -> Result<Self, tokio_postgres::Error> {
        let status: String = r.try_get("status")?;
        Ok(Booking {
            id: r.try_get("booking_id")?,
            version: r.try_get("version")?,
            day: r.try_get("day")?,
            slot: r.try_get("slot")?,
            people: u32::try_from(r.try_get::<_, i32>("people")?).unwrap_or(0),
            // The table's CHECK admits only these three.
            status: BookingStatus::parse(&status).unwrap_or(BookingStatus::Booked),
        })
    }
}

/// Applies one intake of `space`'s bookings (already validated) from `source` in one
/// transaction; an empty intake only records that the ticketing system is alive.
pub async fn apply(
    client: &mut Client,
    space: &str,
    source: &str,
    incoming: Vec<Booking>,
) -> Result<Applied, StoreError> {
    let tx = client.transaction().await?;
    tx.execute(sql::LOCK_AREA_BOOKINGS, &[&space]).await?;
    let ids: Vec<&str> = incoming.iter().map(|b| b.id.as_str()).collect();
    let mut known: HashMap<String, Booking> =
        query_as::<Booking, _>(&tx, sql::STORED_BOOKINGS, &[&space, &ids])
            .await?
            .into_iter()
            .map(|b| (b.id.clone(), b))
            .collect();
    let mut out = Applied::default();
    let mut changed: Vec<String> = Vec::new();
    // In arrival order, each against what the earlier ones left: a batch holding two versions of
    // one booking ends with the higher.
    for b in incoming {
        match admission::merge(known.get(&b.id), b) {
            Merge::Insert(b) => {
                out.inserted += 1;
                changed.push(b.id.clone());
                known.insert(b.id.clone(), b);
            }
            Merge::Update(b) => {
                out.updated += 1;
                changed.push(b.id.clone());
                known.insert(b.id.clone(), b);
            }
            Merge::Duplicate => out.duplicates += 1,
            Merge::Stale => out.stale += 1,
        }
    }
    changed.sort();
    changed.dedup();
    if !changed.is_empty() {
        let rows: Vec<&Booking> = changed.iter().filter_map(|id| known.get(id)).collect();
        let id: Vec<&str> = rows.iter().map(|b| b.id.as_str()).collect();
        let version: Vec<i64> = rows.iter().map(|b| b.version).collect();
        let day: Vec<NaiveDate> = rows.iter().map(|b| b.day).collect();
        let slot: Vec<NaiveTime> = rows.iter().map(|b| b.slot).collect();
        let people: Vec<i32> = rows.iter().map(|b| b.people as i32).collect();
        let status: Vec<&str> = rows.iter().map(|b| b.status.as_str()).collect();
        tx.execute(
            sql::UPSERT_BOOKINGS,
            &[
                &space, &id, &version, &day, &slot, &people, &status, &source,
            ],
        )
        .await?;
    }
    out.received_at = Some(query_scalar(&tx, sql::TOUCH_INTAKE, &[&space, &source]).await?);
    tx.commit().await?;
    Ok(out)
}

/// One slot's counts of one area's day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotRow {
    pub space_id: String,
    pub day: NaiveDate,
    pub slot: NaiveTime,
    pub booked: i64,
    pub checked_in: i64,
    pub cancelled: i64,
}
from_row!(SlotRow {
    space_id,
    day,
    slot,
    booked,
    checked_in,
    cancelled,
});

impl SlotRow {
    pub fn counts(&self) -> (NaiveTime, SlotCounts) {
        let u = |v: i64| u64::try_from(v).unwrap_or(0);
        (
            self.slot,
            SlotCounts {
                booked: u(self.booked),
                checked_in: u(self.checked_in),
                cancelled: u(self.cancelled),
            },
        )
    }
}

/// The per-slot counts of each `(area, day)` asked for.
pub async fn slot_counts(
    client: &impl GenericClient,
    areas: &[(&str, NaiveDate)],
) -> Result<Vec<SlotRow>, StoreError> {
    let spaces: Vec<&str> = areas.iter().map(|(s, _)| *s).collect();
    let days: Vec<NaiveDate> = areas.iter().map(|(_, d)| *d).collect();
    query_as(client, sql::SLOT_COUNTS, &[&spaces, &days]).await
}

/// When each area last heard from its ticketing system.
pub async fn intake_last(
    client: &impl GenericClient,
) -> Result<HashMap<String, DateTime<Utc>>, StoreError> {
    per_space(client, sql::INTAKE_LAST, "last_received").await
}

/// `space_id` → the time in `column` of each row of `sql`.
async fn per_space(
    client: &impl GenericClient,
    sql: &str,
    column: &str,
) -> Result<HashMap<String, DateTime<Utc>>, StoreError> {
    client
        .query(sql, &[])
        .await?
        .iter()
        .map(|r| -> Result<_, StoreError> { Ok((r.try_get("space_id")?, r.try_get(column)?)) })
        .collect()
}

/// Records an operator's confirmation that `space`'s sales may resume, with its audit entry.
pub async fn confirm_resume(
    client: &mut Client,
    space: &str,
    actor: &str,
) -> Result<DateTime<Utc>, StoreError> {
    let tx = client.transaction().await?;
    let at: DateTime<Utc> = query_scalar(&tx, sql::INSERT_CONFIRMATION, &[&space, &actor]).await?;
    tx.execute(
        sql::INSERT_AUDIT,
        &[
            &actor,
            &"confirm_sales_resume",
            &space,
            &serde_json::json!({ "at": at }),
        ],
    )
    .await?;
    tx.commit().await?;
    Ok(at)
}

/// Each area's latest confirmation that sales may resume.
pub async fn last_confirmations(
    client: &impl GenericClient,
) -> Result<HashMap<String, DateTime<Utc>>, StoreError> {
    per_space(client, sql::LAST_CONFIRMATIONS, "confirmed_at").await
}
