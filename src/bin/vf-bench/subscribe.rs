//! `vf-bench count-sub`: the bare rumqttc reference subscriber. QoS 1, persistent session, it only
//! counts publishes and lets rumqttc acknowledge them (automatic acks go out in bulk after each
//! read). Prints `ready` once subscribed and `done <secs>` at the expected count, then keeps the
//! connection until killed, so the harness can read its CPU time first.

use std::io::Write as _;
use std::time::{Duration, Instant};

use anyhow::Context;
use rumqttc::{AsyncClient, Event, MqttOptions, NetworkOptions, Packet, QoS};

#[derive(clap::Args, Debug)]
pub struct CountSubOpts {
    #[arg(long)]
    pub port: u16,
    #[arg(long)]
    pub id: String,
    /// Stop counting (print `done`) at this many publishes.
    #[arg(long, default_value_t = 0)]
    pub expect: u64,
    /// Only create the persistent session and its subscription, then disconnect.
    #[arg(long)]
    pub session_only: bool,
}

pub async fn run(o: CountSubOpts) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut opts = MqttOptions::new(&o.id, "127.0.0.1", o.port);
    opts.set_keep_alive(Duration::from_secs(60))
        .set_clean_session(false)
        .set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut eventloop) = AsyncClient::new(opts, 100);
    let mut net = NetworkOptions::new();
    net.set_tcp_nodelay(true);
    eventloop.set_network_options(net);
    let mut out = std::io::stdout();
    let mut count = 0u64;
    loop {
        match eventloop.poll().await.context("subscriber connection")? {
            Event::Incoming(Packet::ConnAck(ack)) => {
                if !ack.session_present {
                    client.subscribe("vf/+/+/counts", QoS::AtLeastOnce).await?;
                } else {
                    writeln!(out, "ready")?;
                }
            }
            Event::Incoming(Packet::SubAck(_)) => {
                writeln!(out, "ready")?;
                if o.session_only {
                    client.disconnect().await?;
                }
            }
            Event::Outgoing(rumqttc::Outgoing::Disconnect) => return Ok(()),
            Event::Incoming(Packet::Publish(_)) => {
                count += 1;
                if count == o.expect {
                    writeln!(out, "done {:.6}", started.elapsed().as_secs_f64())?;
                }
            }
            _ => {}
        }
    }
}
