//! Counts pushed over HTTP (`POST /ingest/{device}`): the API hands each request body to the
//! ingester that counts the device, which decodes and applies it with the batch it is filling and
//! answers once that batch is committed — the HTTP twin of acknowledging an MQTT message after
//! its commit. A camera retrying after anything but the answer (a timeout, a 503 while the
//! ingester reconnects) resends reports that are then counted as duplicates. The poller
//! (`crate::poll`) hands its reports over the same way.

use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot};

use chrono::SubsecRound;

use super::{Work, note};
use crate::core::Core;
use crate::decode::Reject;
use crate::partition::Scope;

/// One request body for a device (or a polled device's report), and where to answer.
#[derive(Debug)]
pub struct Push {
    pub device: String,
    pub body: PushBody,
    pub received: DateTime<Utc>,
    pub done: oneshot::Sender<Result<Pushed, Reject>>,
}

#[derive(Debug)]
pub enum PushBody {
    /// As the device sent it, in its registry format.
    Raw(Bytes),
    /// Already made by the poller ([`crate::decode::polled`]).
    Reports(Vec<crate::decode::CountReport>),
}

/// What a committed push did: its reports, and those refused with the reason (the others were
/// counted, or were duplicates of reports counted before).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Pushed {
    pub reports: usize,
    pub refused: Vec<PushRefusal>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PushRefusal {
    /// The report's position in the body.
    pub index: usize,
    /// `visitorflow_reports_rejected_total`'s reason.
    pub reason: &'static str,
    pub message: String,
}

/// Pushes waiting for an ingester: a few per device is plenty (cameras push every minute or so).
pub const QUEUE: usize = 256;

/// Where this instance's API sends pushes: its ingester, or per partition the one that counts
/// the device.
#[derive(Default)]
pub struct PushIntake {
    routes: Vec<(Option<Arc<Scope>>, mpsc::Sender<Push>)>,
}

impl PushIntake {
    /// A route for the ingester of `scope` (`None`: the only one), and its receiving end.
    pub fn route(&mut self, scope: Option<Arc<Scope>>) -> mpsc::Receiver<Push> {
        let (tx, rx) = mpsc::channel(QUEUE);
        self.routes.push((scope, tx));
        rx
    }

    /// Whether this instance counts `device` now: its ingester runs here, and (partitioned) holds
    /// the device's partition rather than standing by for it.
    pub fn serving(&self, device: &str) -> bool {
        self.routes.iter().any(|(scope, _)| match scope {
            None => true,
            Some(s) => s.registry.device_idx(device).is_some() && s.is_held(),
        })
    }

    /// The ingester counting `device` on this instance, if any.
    pub fn sender(&self, device: &str) -> Option<&mpsc::Sender<Push>> {
        self.routes
            .iter()
            .find(|(scope, _)| {
                scope
                    .as_ref()
                    .is_none_or(|s| s.registry.device_idx(device).is_some())
            })
            .map(|(_, tx)| tx)
    }
}

impl super::Ingester {
    /// A body pushed over HTTP: decoded for its device and applied to the batch (answered after
    /// the commit), or refused whole at once.
    pub(super) fn push(&self, p: Push, core: &mut Core, work: &mut Work) {
        let topic = format!("http:/ingest/{}", p.device);
        let received = p.received.trunc_subsecs(6);
        work.messages.increment(1);
        let Some(device) = self.registry.device_idx(&p.device) else {
            note(&mut work.rejects, &Reject::UnknownDevice, &p.device, &topic);
            let _ = p.done.send(Err(Reject::UnknownDevice));
            return;
        };
        let d = self.registry.device(device);
        work.scratch.clear();
        let decoded = match &p.body {
            PushBody::Raw(body) => {
                crate::decode::decode_counts(d, body, received, &self.limits, &mut work.scratch)
            }
            PushBody::Reports(reports) => {
                work.scratch.extend(reports.iter().copied().map(Ok));
                Ok(())
            }
        };
        match decoded {
            Err(r) => {
                note(&mut work.rejects, &r, d.id.as_str(), &topic);
                let _ = p.done.send(Err(r));
            }
            Ok(()) => {
                let reports = work.scratch.len();
                let mut refused = Vec::new();
                self.apply_decoded(device, &topic, received, core, work, Some(&mut refused));
                work.pushes.push((p.done, Pushed { reports, refused }));
            }
        }
    }
}
