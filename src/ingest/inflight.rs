//! A batch whose commit runs as its own task while the ingester goes on, and what to do once it
//! has committed (pipelined commits, docs/performance.md).

use std::time::Duration;

use tokio::time::Instant;

use super::{IngestError, PushReply};
use crate::core::BatchStats;
use crate::core::loss::Mark;
use crate::ids::DeviceIdx;
use crate::ingest::push::Pushed;
use crate::live::Captured;
use crate::source::Acks;
use crate::store::StoreError;

/// A batch whose commit is running, with what to do once it has committed.
pub(super) struct InFlight {
    pub(super) task: AbortOnDrop,
    pub(super) deadline: Instant,
    pub(super) started: Instant,
    pub(super) acks: Acks,
    pub(super) pushes: Vec<(PushReply, Pushed)>,
    pub(super) captured: Captured,
    pub(super) stats: BatchStats,
    /// The batch's devices' states, remembered once acknowledged (`failover::Marks`).
    pub(super) states: Vec<(DeviceIdx, Mark)>,
}

pub(super) type CommitResult = (tokio_postgres::Client, Result<(), StoreError>);

/// Aborts the commit task if the session ends while it runs (its transaction then rolls back
/// with the connection; the broker redelivers the batch to the next session).
pub(super) struct AbortOnDrop(pub(super) tokio::task::JoinHandle<CommitResult>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The in-flight commit's outcome (the connection comes back), or never when none is running.
pub(super) async fn wait_commit(
    inflight: &mut Option<InFlight>,
    limit: Duration,
) -> Result<tokio_postgres::Client, IngestError> {
    let Some(f) = inflight.as_mut() else {
        return std::future::pending().await;
    };
    match tokio::time::timeout_at(f.deadline, &mut f.task.0).await {
        Err(_) => Err(IngestError::CommitTimeout(limit)),
        Ok(Err(e)) => Err(IngestError::CommitTask(e.to_string())),
        Ok(Ok((_, Err(e)))) => Err(e.into()),
        Ok(Ok((client, Ok(())))) => Ok(client),
    }
}
