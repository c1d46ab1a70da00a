//! The MQTT session's decisions without a socket (rumqttc keeps `state.rs` beside `eventloop.rs`
//! the same way): which packets open the session, what each incoming packet means, and when the
//! session is ready. The shell in `mod.rs` only reads, writes and forwards.

use rumqttc::{
    Connect, ConnectReturnCode, Packet, Publish, QoS, Subscribe, SubscribeFilter,
    SubscribeReasonCode,
};

use super::MqttConfig;

/// Filters per SUBSCRIBE packet: a partition subscribes three filters per space it owns, which
/// must not make one huge packet.
pub const FILTERS_PER_SUBSCRIBE: usize = 64;

/// Why the session must end (the shell drops the connection so the broker redelivers).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    #[error("broker refused the connection: {0:?}")]
    Refused(ConnectReturnCode),
    #[error("the broker's first packet was not a CONNACK")]
    NoConnAck,
    #[error("broker refused a subscription (ACL?)")]
    SubscriptionRefused,
    /// Subscribed at QoS 1, so the broker must downgrade; QoS 2 would need PUBREC.
    #[error("broker sent a QoS 2 publish to a QoS 1 subscription")]
    ExactlyOnce,
    #[error("broker sent DISCONNECT")]
    Disconnect,
    #[error("nothing to subscribe to")]
    NothingToSubscribe,
    #[error("too many subscriptions")]
    TooManySubscriptions,
}

/// What one incoming packet means for the shell.
#[derive(Debug, PartialEq)]
pub enum Step {
    /// Nothing to forward (CONNACK handled, PINGRESP, an early SUBACK …).
    Nothing,
    /// A message for the ingester.
    Publish(Publish),
    /// The last SUBACK arrived: the session is live. Publishes read before it go first.
    Ready { session_present: bool },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    AwaitConnAck,
    Subscribing,
    Live,
}

/// One connection's session state, from CONNECT to the last SUBACK and on.
#[derive(Debug)]
pub struct SessionState {
    phase: Phase,
    unacked_subscribes: usize,
    session_present: bool,
}

impl Default for SessionState {
    fn default() -> Self {
        SessionState {
            phase: Phase::AwaitConnAck,
            unacked_subscribes: 0,
            session_present: false,
        }
    }
}

/// The CONNECT that opens a persistent session: fixed client id, clean session off.
pub fn connect_packet(cfg: &MqttConfig, keep_alive_s: u16) -> Connect {
    let mut connect = Connect::new(cfg.client_id.as_str());
    connect.keep_alive = keep_alive_s;
    connect.clean_session = false;
    if let (Some(u), Some(p)) = (&cfg.username, &cfg.password) {
        connect.set_login(u.as_str(), p.as_str());
    }
    connect
}

impl SessionState {
    /// The SUBSCRIBE packets for `filters` (QoS 1), at most [`FILTERS_PER_SUBSCRIBE`] each.
    /// Subscribing again on a resumed session is harmless and brings retained statuses.
    pub fn subscribe(&mut self, filters: &[String]) -> Result<Vec<Subscribe>, SessionError> {
        let packets = filters
            .chunks(FILTERS_PER_SUBSCRIBE)
            .enumerate()
            .map(|(i, chunk)| {
                let mut s = Subscribe::new_many(
                    chunk
                        .iter()
                        .map(|f| SubscribeFilter::new(f.clone(), QoS::AtLeastOnce)),
                );
                // Packet ids 1..=n are free: nothing else is in flight from this side yet.
                s.pkid = u16::try_from(i + 1).map_err(|_| SessionError::TooManySubscriptions)?;
                Ok(s)
            })
            .collect::<Result<Vec<_>, _>>()?;
        if packets.is_empty() {
            return Err(SessionError::NothingToSubscribe);
        }
        self.unacked_subscribes = packets.len();
        Ok(packets)
    }

    /// What `packet` means now; an error ends the session.
    pub fn on_packet(&mut self, packet: Packet) -> Result<Step, SessionError> {
        match (self.phase, packet) {
            (Phase::AwaitConnAck, Packet::ConnAck(ack))
                if ack.code == ConnectReturnCode::Success =>
            {
                self.session_present = ack.session_present;
                self.phase = Phase::Subscribing;
                Ok(Step::Nothing)
            }
            (Phase::AwaitConnAck, Packet::ConnAck(ack)) => Err(SessionError::Refused(ack.code)),
            (Phase::AwaitConnAck, _) => Err(SessionError::NoConnAck),
            (_, Packet::Publish(p)) if p.qos == QoS::ExactlyOnce => Err(SessionError::ExactlyOnce),
            (_, Packet::Publish(p)) => Ok(Step::Publish(p)),
            (_, Packet::SubAck(ack)) => {
                if ack.return_codes.contains(&SubscribeReasonCode::Failure) {
                    return Err(SessionError::SubscriptionRefused);
                }
                if self.phase != Phase::Subscribing {
                    return Ok(Step::Nothing);
                }
                self.unacked_subscribes = self.unacked_subscribes.saturating_sub(1);
                if self.unacked_subscribes > 0 {
                    return Ok(Step::Nothing);
                }
                self.phase = Phase::Live;
                Ok(Step::Ready {
                    session_present: self.session_present,
                })
            }
            (_, Packet::Disconnect) => Err(SessionError::Disconnect),
            _ => Ok(Step::Nothing),
        }
    }

    /// Whether the last SUBACK has arrived.
    pub fn is_live(&self) -> bool {
        self.phase == Phase::Live
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rumqttc::{ConnAck, SubAck};

    fn cfg() -> MqttConfig {
        toml::from_str("host = \"h\"\nclient_id = \"vf\"\nusername = \"u\"\npassword = \"p\"")
            .expect("mqtt config")
    }

    fn connack(code: ConnectReturnCode, present: bool) -> Packet {
        Packet::ConnAck(ConnAck::new(code, present))
    }

    fn suback(pkid: u16, ok: bool) -> Packet {
        let code = if ok {
            SubscribeReasonCode::Success(QoS::AtLeastOnce)
        } else {
            SubscribeReasonCode::Failure
        };
        Packet::SubAck(SubAck::new(pkid, vec![code]))
    }

    fn publish(qos: QoS) -> Packet {
        Packet::Publish(Publish::new("vf/a/d/counts", qos, "{}"))
    }

    fn filters(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("vf/s{i}/+/counts")).collect()
    }

    #[test]
    fn the_connect_is_a_persistent_session_with_credentials() {
        let c = connect_packet(&cfg(), 30);
        assert_eq!(c.client_id, "vf");
        assert!(!c.clean_session);
        assert_eq!(c.keep_alive, 30);
        assert_eq!(c.login.map(|l| l.username), Some("u".to_owned()));
    }

    #[test]
    fn ready_only_after_every_suback_and_with_the_session_flag() {
        let mut s = SessionState::default();
        let subs = s.subscribe(&filters(130)).expect("subscribe");
        assert_eq!(subs.len(), 3, "64 filters per packet");
        assert_eq!(
            subs.iter().map(|p| p.pkid).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
        assert!(
            subs.iter()
                .all(|p| p.filters.len() <= FILTERS_PER_SUBSCRIBE)
        );
        assert_eq!(
            s.on_packet(connack(ConnectReturnCode::Success, true)),
            Ok(Step::Nothing)
        );
        // A redelivered publish may arrive before the SUBACKs: it is forwarded, not held.
        assert!(matches!(
            s.on_packet(publish(QoS::AtLeastOnce)),
            Ok(Step::Publish(_))
        ));
        assert_eq!(s.on_packet(suback(1, true)), Ok(Step::Nothing));
        assert_eq!(s.on_packet(suback(2, true)), Ok(Step::Nothing));
        assert!(!s.is_live());
        assert_eq!(
            s.on_packet(suback(3, true)),
            Ok(Step::Ready {
                session_present: true
            })
        );
        assert!(s.is_live());
        // A late SUBACK after the session is live does not announce it twice.
        assert_eq!(s.on_packet(suback(4, true)), Ok(Step::Nothing));
    }

    #[test]
    fn refusals_end_the_session_with_a_reason() {
        let mut s = SessionState::default();
        assert_eq!(
            s.on_packet(connack(ConnectReturnCode::NotAuthorized, false)),
            Err(SessionError::Refused(ConnectReturnCode::NotAuthorized))
        );
        let mut s = SessionState::default();
        assert_eq!(s.on_packet(suback(1, true)), Err(SessionError::NoConnAck));
        let mut s = SessionState::default();
        s.subscribe(&filters(1)).expect("subscribe");
        s.on_packet(connack(ConnectReturnCode::Success, false))
            .expect("connack");
        assert_eq!(
            s.on_packet(suback(1, false)),
            Err(SessionError::SubscriptionRefused)
        );
        assert_eq!(
            s.on_packet(publish(QoS::ExactlyOnce)),
            Err(SessionError::ExactlyOnce)
        );
        assert_eq!(
            s.on_packet(Packet::Disconnect),
            Err(SessionError::Disconnect)
        );
        assert_eq!(
            SessionState::default().subscribe(&[]),
            Err(SessionError::NothingToSubscribe)
        );
    }

    #[test]
    fn qos0_publishes_and_pings_pass_through() {
        let mut s = SessionState::default();
        s.on_packet(connack(ConnectReturnCode::Success, false))
            .expect("connack");
        assert!(matches!(
            s.on_packet(publish(QoS::AtMostOnce)),
            Ok(Step::Publish(p)) if p.qos == QoS::AtMostOnce
        ));
        assert_eq!(s.on_packet(Packet::PingResp), Ok(Step::Nothing));
    }
}
