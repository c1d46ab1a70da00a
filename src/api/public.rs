//! The unauthenticated, read-only routes under `/api/v1/public/`: the crowd board's per-area facts
//! (level, comfort wording, open or closed, updated at — no device or raw data) and the FIWARE
//! Smart Data Models `CrowdFlowObserved` (scenic areas) and `OffStreetParking` (car parks) in
//! NGSI-LD keyValues form. Everything comes from [`crate::live::Live`]; rate-limited per address.

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use crate::live::{SpaceNow, TicketsNow};
use crate::registry::SpaceKind;
use crate::rules::{Level, Status};

/// How crowded an area feels, from its level: what a visitor needs to decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Comfort {
    /// 舒适: normal or blue.
    Comfortable,
    /// 较舒适: yellow.
    Busy,
    /// 拥挤: orange.
    Crowded,
    /// 饱和: red — tickets are no longer sold.
    Full,
    /// 暂无数据: no fresh counts, or no approved capacity.
    Unknown,
}

impl Comfort {
    pub fn of(level: Option<Level>) -> Comfort {
        match level {
            None => Comfort::Unknown,
            Some(Level::Normal | Level::Blue) => Comfort::Comfortable,
            Some(Level::Yellow) => Comfort::Busy,
            Some(Level::Orange) => Comfort::Crowded,
            Some(Level::Red) => Comfort::Full,
        }
    }

    pub fn zh(self) -> &'static str {
        match self {
            Comfort::Comfortable => "舒适",
            Comfort::Busy => "较舒适",
            Comfort::Crowded => "拥挤",
            Comfort::Full => "饱和",
            Comfort::Unknown => "暂无数据",
        }
    }

    pub fn en(self) -> &'static str {
        match self {
            Comfort::Comfortable => "Comfortable",
            Comfort::Busy => "Busy",
            Comfort::Crowded => "Crowded",
            Comfort::Full => "Full",
            Comfort::Unknown => "No data",
        }
    }
}

/// The public level ([`Status::level`]).
fn public_level(status: Option<&Status>) -> Option<Level> {
    status?.level()
}

fn updated_at(now: &SpaceNow, status: Option<&Status>) -> Option<DateTime<Utc>> {
    now.last_report.or(status.map(|s| s.at))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PublicArea {
    pub id: String,
    pub name_zh: String,
    pub name_en: String,
    /// normal, blue, yellow, orange, red; null when unknown.
    pub level: Option<String>,
    pub comfort: Comfort,
    pub comfort_zh: &'static str,
    pub comfort_en: &'static str,
    /// False while a hazard (flash flood, storm, …) closes the area.
    pub open: bool,
    pub updated_at: Option<DateTime<Utc>>,
    /// Areas selling timed entry: ticket sales now and places left today (余票).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tickets: Option<TicketsNow>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PublicAreas {
    pub areas: Vec<PublicArea>,
    pub generated_at: DateTime<Utc>,
}

/// Per scenic area: level, comfort wording, open or closed, updated at. No token needed.
#[utoipa::path(get, path = "/api/v1/public/areas", tag = "public", security(()),
    responses((status = 200, description = "Every scenic area's public facts", body = PublicAreas)))]
pub async fn areas(State(st): State<AppState>) -> Response {
    let now = st.live.spaces();
    let statuses = st.live.statuses();
    let areas = st
        .registry
        .spaces
        .iter()
        .filter(|s| s.kind == SpaceKind::ScenicArea)
        .map(|s| {
            let status = statuses[s.idx.get()].as_deref();
            let level = public_level(status);
            let comfort = Comfort::of(level);
            PublicArea {
                id: s.id.to_string(),
                name_zh: s.name_zh.clone(),
                name_en: s.name_en.clone(),
                level: level.map(|l| l.as_str().to_owned()),
                comfort,
                comfort_zh: comfort.zh(),
                comfort_en: comfort.en(),
                open: !status.is_some_and(|s| s.closed),
                updated_at: updated_at(&now[s.idx.get()], status),
                tickets: st.live.tickets(s.idx),
            }
        })
        .collect();
    public_json(PublicAreas {
        areas,
        generated_at: Utc::now(),
    })
}

fn public_json<T: Serialize>(v: T) -> Response {
    // Nothing private: shared caches may hold it briefly, sparing the service a board's polls.
    ([(header::CACHE_CONTROL, "public, max-age=5")], Json(v)).into_response()
}

fn urn(kind: &str, id: &str) -> String {
    format!("urn:ngsi-ld:{kind}:visitorflow:{id}")
}

/// FIWARE `CrowdFlowObserved` (keyValues).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CrowdFlowObserved {
    /// `urn:ngsi-ld:CrowdFlowObserved:visitorflow:{space}`.
    pub id: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub name: String,
    pub alternate_name: String,
    pub date_observed: Option<DateTime<Utc>>,
    /// People inside the area now.
    pub people_count: u64,
    /// People inside ÷ effective instantaneous capacity, 0–1 (null without a capacity).
    pub occupancy: Option<f64>,
    /// At orange or above.
    pub congested: bool,
    /// Entries since the day opened.
    pub people_count_today: u64,
    pub data_provider: &'static str,
}

/// FIWARE `OffStreetParking` (keyValues).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OffStreetParking {
    /// `urn:ngsi-ld:OffStreetParking:visitorflow:{space}`.
    pub id: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub name: String,
    pub alternate_name: String,
    pub date_observed: Option<DateTime<Utc>>,
    pub total_spot_number: Option<u32>,
    pub occupied_spot_number: u64,
    pub available_spot_number: Option<u64>,
    pub occupancy: Option<f64>,
    /// One of `closed`, `full`, `almostFull`, `spacesAvailable`.
    pub status: Vec<&'static str>,
    pub vehicle_entrance_count: u64,
    pub vehicle_exit_count: u64,
    /// The scenic area the car park serves.
    pub ref_point_of_interest: Option<String>,
    pub data_provider: &'static str,
}

fn capacity_of(status: Option<&Status>, approved: Option<u32>) -> Option<u32> {
    status
        .and_then(|s| s.instant.effective_capacity)
        .or(approved)
        .filter(|c| *c > 0)
}

/// Scenic areas as FIWARE `CrowdFlowObserved` entities (NGSI-LD keyValues).
#[utoipa::path(get, path = "/api/v1/public/ngsi/CrowdFlowObserved", tag = "public", security(()),
    responses((status = 200, description = "One entity per scenic area", body = Vec<CrowdFlowObserved>)))]
pub async fn crowd_flow(State(st): State<AppState>) -> Response {
    let now = st.live.spaces();
    let statuses = st.live.statuses();
    let out: Vec<_> = st
        .registry
        .spaces
        .iter()
        .filter(|s| s.kind == SpaceKind::ScenicArea)
        .map(|s| {
            let n = &now[s.idx.get()];
            let status = statuses[s.idx.get()].as_deref();
            let cap = capacity_of(status, s.instant_capacity);
            CrowdFlowObserved {
                id: urn("CrowdFlowObserved", s.id.as_str()),
                kind: "CrowdFlowObserved",
                name: s.name_zh.clone(),
                alternate_name: s.name_en.clone(),
                date_observed: updated_at(n, status),
                people_count: n.occupancy,
                occupancy: super::spaces::ratio(n.occupancy, cap),
                congested: public_level(status).is_some_and(|l| l >= Level::Orange),
                people_count_today: n.entries_today,
                data_provider: "visitorflow",
            }
        })
        .collect();
    public_json(out)
}

/// What a car park's `status` says: closed by a hazard, full, almost full (≤ 10% free), or not.
fn parking_status(closed: bool, total: Option<u32>, available: Option<u64>) -> &'static str {
    if closed {
        return "closed";
    }
    match (total, available) {
        (Some(_), Some(0)) => "full",
        (Some(t), Some(a)) if a * 10 <= u64::from(t) => "almostFull",
        _ => "spacesAvailable",
    }
}

/// Car parks as FIWARE `OffStreetParking` entities (NGSI-LD keyValues).
#[utoipa::path(get, path = "/api/v1/public/ngsi/OffStreetParking", tag = "public", security(()),
    responses((status = 200, description = "One entity per car park", body = Vec<OffStreetParking>)))]
pub async fn parking(State(st): State<AppState>) -> Response {
    let now = st.live.spaces();
    let statuses = st.live.statuses();
    let reg = &st.registry;
    let out: Vec<_> = reg
        .spaces
        .iter()
        .filter(|s| s.kind == SpaceKind::CarPark)
        .map(|s| {
            let n = &now[s.idx.get()];
            let status = statuses[s.idx.get()].as_deref();
            let total = capacity_of(status, s.instant_capacity);
            let available = total.map(|t| u64::from(t).saturating_sub(n.occupancy));
            OffStreetParking {
                id: urn("OffStreetParking", s.id.as_str()),
                kind: "OffStreetParking",
                name: s.name_zh.clone(),
                alternate_name: s.name_en.clone(),
                date_observed: updated_at(n, status),
                total_spot_number: total,
                occupied_spot_number: n.occupancy,
                available_spot_number: available,
                occupancy: super::spaces::ratio(n.occupancy, total),
                status: vec![parking_status(
                    status.is_some_and(|s| s.closed),
                    total,
                    available,
                )],
                vehicle_entrance_count: n.entries_today,
                vehicle_exit_count: n.exits_today,
                ref_point_of_interest: s
                    .parent
                    .map(|p| urn("PointOfInterest", reg.space(p).id.as_str())),
                data_provider: "visitorflow",
            }
        })
        .collect();
    public_json(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comfort_follows_the_level() {
        assert_eq!(Comfort::of(Some(Level::Normal)), Comfort::Comfortable);
        assert_eq!(Comfort::of(Some(Level::Blue)), Comfort::Comfortable);
        assert_eq!(Comfort::of(Some(Level::Yellow)).zh(), "较舒适");
        assert_eq!(Comfort::of(Some(Level::Orange)).zh(), "拥挤");
        assert_eq!(Comfort::of(Some(Level::Red)).en(), "Full");
        assert_eq!(Comfort::of(None).zh(), "暂无数据");
    }

    #[test]
    fn parking_status_by_free_spots() {
        assert_eq!(parking_status(true, Some(100), Some(50)), "closed");
        assert_eq!(parking_status(false, Some(100), Some(0)), "full");
        assert_eq!(parking_status(false, Some(100), Some(10)), "almostFull");
        assert_eq!(
            parking_status(false, Some(100), Some(11)),
            "spacesAvailable"
        );
        assert_eq!(parking_status(false, None, None), "spacesAvailable");
    }
}
