//! One shutdown signal for every long-running task (the shape of mini-redis's `shutdown.rs`):
//! [`channel`] gives the [`Trigger`] the owner keeps and a [`Shutdown`] each task clones. A task
//! `select!`s on [`Shutdown::recv`] beside its work; dropping the trigger also counts as the
//! signal, so a task never outlives the service that started it.

use tokio::sync::watch;

/// Starts the shutdown of every [`Shutdown`] made from it.
#[derive(Debug)]
pub struct Trigger(watch::Sender<bool>);

/// A task's view of the signal.
#[derive(Debug, Clone)]
pub struct Shutdown(watch::Receiver<bool>);

pub fn channel() -> (Trigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (Trigger(tx), Shutdown(rx))
}

impl Trigger {
    /// Signals every listener; later [`Shutdown::recv`] calls return at once.
    pub fn trigger(&self) {
        self.0.send_replace(true);
    }

    pub fn listener(&self) -> Shutdown {
        Shutdown(self.0.subscribe())
    }
}

impl Shutdown {
    /// Returns once the shutdown was triggered (or its trigger dropped).
    pub async fn recv(&mut self) {
        let _ = self.0.wait_for(|stop| *stop).await;
    }

    /// Whether the shutdown was triggered (or its trigger dropped), without waiting.
    pub fn is_shutdown(&self) -> bool {
        *self.0.borrow() || self.0.has_changed().is_err()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn every_listener_sees_the_trigger_even_when_it_listens_late() {
        let (trigger, mut early) = channel();
        let waiting = tokio::spawn(async move { early.recv().await });
        assert!(!trigger.listener().is_shutdown());
        trigger.trigger();
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("the early listener returns")
            .unwrap();
        let mut late = trigger.listener();
        assert!(late.is_shutdown());
        tokio::time::timeout(Duration::from_secs(5), late.recv())
            .await
            .expect("a late listener returns at once");
    }

    #[tokio::test]
    async fn a_dropped_trigger_stops_its_listeners() {
        let (trigger, mut listener) = channel();
        drop(trigger);
        assert!(listener.is_shutdown());
        tokio::time::timeout(Duration::from_secs(5), listener.recv())
            .await
            .expect("returns once the trigger is gone");
    }
}
