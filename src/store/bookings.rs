//! Bookings and slot totals as ticketing systems report them: one transaction per intake (or the
//! ingester's batch, for MQTT) that locks the area, reads the stored versions, applies
//! [`admission::merge`] / [`admission::order`] (the one place each decision is made) and writes
//! what changed; and the per-slot counts the API and alerting read.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use tokio_postgres::{Client, GenericClient, Row};

use super::row::{FromRow, from_row, query_as, query_scalar};
use super::{StoreError, sql};
use crate::admission::{
    self, Booking, BookingStatus, Checked, Merge, Order, SlotCounts, SlotTotals,
};

/// What one intake did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Applied {
    /// Bookings and slot totals, counted together.
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

impl Applied {
    /// The telemetry event of this intake, with the items `refused` before it.
    pub fn event<'a>(
        &self,
        space: &'a str,
        from: &'a str,
        refused: &'a [admission::Refused],
    ) -> crate::telemetry::events::TicketIntake<'a> {
        crate::telemetry::events::TicketIntake {
            space,
            from,
            inserted: self.inserted.into(),
            updated: self.updated.into(),
            duplicates: self.duplicates.into(),
            stale: self.stale.into(),
            rejected: refused.len() as u64,
            first_refusal: refused.first().map(|r| r.reason.as_str()),
        }
    }
}

/// Applies one intake of `space`'s bookings and slot totals (already validated) from `source`
/// in one transaction; an empty intake only records that the ticketing system is alive.
pub async fn apply(
    client: &mut Client,
    space: &str,
    source: &str,
    intake: &Checked,
) -> Result<Applied, StoreError> {
    let tx = client.transaction().await?;
    let out = apply_in(&tx, space, source, intake).await?;
    tx.commit().await?;
    Ok(out)
}

/// [`apply`] inside the caller's transaction (the ingester's batch, for MQTT intake).
pub async fn apply_in(
    tx: &impl GenericClient,
    space: &str,
    source: &str,
    intake: &Checked,
) -> Result<Applied, StoreError> {
    tx.execute(sql::LOCK_AREA_BOOKINGS, &[&space]).await?;
    let mut out = Applied::default();
    apply_bookings(tx, space, source, &intake.bookings, &mut out).await?;
    apply_totals(tx, space, &intake.channel, &intake.slots, &mut out).await?;
    out.received_at = Some(query_scalar(tx, sql::TOUCH_INTAKE, &[&space, &source]).await?);
    Ok(out)
}

async fn apply_bookings(
    tx: &impl GenericClient,
    space: &str,
    source: &str,
    incoming: &[Booking],
    out: &mut Applied,
) -> Result<(), StoreError> {
    if incoming.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = incoming.iter().map(|b| b.id.as_str()).collect();
    let mut known: HashMap<String, Booking> =
        query_as::<Booking, _>(tx, sql::STORED_BOOKINGS, &[&space, &ids])
            .await?
            .into_iter()
            .map(|b| (b.id.clone(), b))
            .collect();
    let mut changed: Vec<String> = Vec::new();
    // In arrival order, each against what the earlier ones left: a batch holding two versions of
    // one booking ends with the higher.
    for b in incoming {
        match admission::merge(known.get(&b.id), b.clone()) {
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
    Ok(())
}

/// Slot totals: per day and slot, the newest `as_of` of the channel wins.
async fn apply_totals(
    tx: &impl GenericClient,
    space: &str,
    channel: &str,
    incoming: &[SlotTotals],
    out: &mut Applied,
) -> Result<(), StoreError> {
    if incoming.is_empty() {
        return Ok(());
    }
    let days: Vec<NaiveDate> = incoming.iter().map(|t| t.day).collect();
    let slots: Vec<NaiveTime> = incoming.iter().map(|t| t.slot).collect();
    let mut known: HashMap<(NaiveDate, NaiveTime), DateTime<Utc>> = HashMap::new();
    for r in tx
        .query(sql::STORED_SLOT_TOTALS, &[&space, &channel, &days, &slots])
        .await?
    {
        known.insert((r.try_get("day")?, r.try_get("slot")?), r.try_get("as_of")?);
    }
    let mut write: HashMap<(NaiveDate, NaiveTime), &SlotTotals> = HashMap::new();
    for t in incoming {
        let key = (t.day, t.slot);
        match admission::order(known.get(&key).copied(), t.as_of) {
            Order::New => out.inserted += 1,
            Order::Newer => out.updated += 1,
            Order::Same => {
                out.duplicates += 1;
                continue;
            }
            Order::Older => {
                out.stale += 1;
                continue;
            }
        }
        known.insert(key, t.as_of);
        write.insert(key, t);
    }
    if write.is_empty() {
        return Ok(());
    }
    let rows: Vec<&SlotTotals> = write.into_values().collect();
    let day: Vec<NaiveDate> = rows.iter().map(|t| t.day).collect();
    let slot: Vec<NaiveTime> = rows.iter().map(|t| t.slot).collect();
    let n = |f: fn(&SlotCounts) -> u64| -> Vec<i64> {
        rows.iter()
            .map(|t| i64::try_from(f(&t.counts)).unwrap_or(i64::MAX))
            .collect()
    };
    let (booked, checked_in, cancelled) =
        (n(|c| c.booked), n(|c| c.checked_in), n(|c| c.cancelled));
    let as_of: Vec<DateTime<Utc>> = rows.iter().map(|t| t.as_of).collect();
    tx.execute(
        sql::UPSERT_SLOT_TOTALS,
        &[
            &space,
            &channel,
            &day,
            &slot,
            &booked,
            &checked_in,
            &cancelled,
            &as_of,
        ],
    )
    .await?;
    Ok(())
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

/// Records an operator's confirmation that `space`'s sales may resume, releasing any hold on
/// them, with its audit entry.
pub async fn confirm_resume(
    client: &mut Client,
    space: &str,
    actor: &str,
) -> Result<DateTime<Utc>, StoreError> {
    let tx = client.transaction().await?;
    let at: DateTime<Utc> = query_scalar(&tx, sql::INSERT_CONFIRMATION, &[&space, &actor]).await?;
    tx.execute(sql::RELEASE_HOLDS, &[&space, &actor]).await?;
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

/// An operator's hold on `space`'s sales, with its audit entry (`pause_sales`).
pub async fn hold_sales(
    client: &mut Client,
    space: &str,
    actor: &str,
    reason: &str,
) -> Result<DateTime<Utc>, StoreError> {
    let tx = client.transaction().await?;
    let at: DateTime<Utc> = query_scalar(&tx, sql::INSERT_HOLD, &[&space, &reason, &actor]).await?;
    tx.execute(
        sql::INSERT_AUDIT,
        &[
            &actor,
            &"pause_sales",
            &space,
            &serde_json::json!({ "at": at, "reason": reason }),
        ],
    )
    .await?;
    tx.commit().await?;
    Ok(at)
}

/// The areas whose sales an operator holds, since when.
pub async fn active_holds(
    client: &impl GenericClient,
) -> Result<HashMap<String, DateTime<Utc>>, StoreError> {
    per_space(client, sql::ACTIVE_HOLDS, "held_at").await
}
