//! The ingester's side of a ticketing message (`{prefix}/{space}/tickets`): checked against the
//! area's plan when it arrives, written with the batch (`crate::store::bookings::apply_in`).

use chrono::{DateTime, Utc};
use rumqttc::Publish;

use super::{Ingester, Work, note};
use crate::admission::{self, TicketMessage};
use crate::decode::Reject;
use crate::ids::SpaceIdx;
use crate::store::TicketWrite;
use crate::telemetry::events::{InternalEvent, TicketIntake};

impl Ingester {
    /// A ticketing message: checked against the area's plan now (refusals are final, logged and
    /// counted at once), stored with the batch.
    pub(super) fn tickets(
        &self,
        space: SpaceIdx,
        p: &Publish,
        received: DateTime<Utc>,
        work: &mut Work,
    ) {
        let id = self.registry.space(space).id.as_str();
        let refuse = |work: &mut Work, r: Reject| note(&mut work.rejects, &r, "-", &p.topic);
        let Some(plan) = self.reservations.plan_by_id(id) else {
            return refuse(
                work,
                Reject::InvalidReport(format!("{id} sells no timed entry ([admission.spaces])")),
            );
        };
        let msg: TicketMessage = match serde_json::from_slice(&p.payload) {
            Ok(m) => m,
            Err(e) if e.is_data() => return refuse(work, Reject::InvalidReport(e.to_string())),
            Err(e) => return refuse(work, Reject::MalformedJson(e.to_string())),
        };
        let today = admission::today(&self.registry, space, received);
        match msg.check(plan, today, received, "mqtt") {
            Err(reason) => {
                TicketIntake::message_refused(id, &p.topic, msg.items(), &reason).emit();
                refuse(work, Reject::InvalidReport(reason));
            }
            Ok(mut checked) => {
                let refused = std::mem::take(&mut checked.refused);
                if let Some(first) = refused.first() {
                    TicketIntake::refused(id, &p.topic, refused.len() as u64, &first.reason).emit();
                }
                work.tickets.push(TicketWrite {
                    space: id.to_owned(),
                    topic: p.topic.clone(),
                    checked,
                });
            }
        }
    }
}
