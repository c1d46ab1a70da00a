//! `vf-bench publish`: the many-topic publisher (mosquitto_pub -l publishes one topic per
//! process). Report k goes to device k mod D with that device's next seq; a device always uses the
//! same connection, so its reports reach the broker in order. Stamps each report with the time it
//! is handed to the client, which the latency figures subtract from.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use chrono::Utc;
use rumqttc::{AsyncClient, Event, MqttOptions, NetworkOptions, Outgoing, Packet, QoS};
use tokio::time::Instant;

use crate::workload;

#[derive(clap::Args, Debug, Clone)]
pub struct PublishOpts {
    #[arg(long)]
    pub port: u16,
    /// Client ids are `{prefix}-{connection}`.
    #[arg(long)]
    pub prefix: String,
    /// A file with one topic per device.
    #[arg(long)]
    pub topics: PathBuf,
    /// Reports in total, spread round-robin over the devices.
    #[arg(long)]
    pub count: u64,
    #[arg(long, default_value_t = 1)]
    pub qos: u8,
    #[arg(long, default_value_t = 2)]
    pub connections: usize,
    /// Reports per second over all connections; 0 publishes as fast as the broker takes them.
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Unacknowledged QoS 1 publishes per connection (as `mosquitto_pub -M`).
    #[arg(long, default_value_t = 1000)]
    pub inflight: u16,
    /// Seqs start after this one (a warm-up already sent the earlier ones).
    #[arg(long, default_value_t = 0)]
    pub seq_base: u64,
}

pub async fn run(o: PublishOpts) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&o.topics)
        .with_context(|| format!("reading {}", o.topics.display()))?;
    let topics: Vec<String> = text.lines().map(str::to_owned).collect();
    anyhow::ensure!(!topics.is_empty(), "no topics in {}", o.topics.display());
    let conns = o.connections.clamp(1, topics.len());
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..conns {
        let o = o.clone();
        let topics = topics.clone();
        tasks.push(tokio::spawn(async move {
            connection(&o, &topics, c, conns, started).await
        }));
    }
    let mut sent = 0;
    for t in tasks {
        sent += t.await??;
    }
    println!(
        "{{\"published\":{sent},\"secs\":{:.6}}}",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn connection(
    o: &PublishOpts,
    topics: &[String],
    c: usize,
    conns: usize,
    started: Instant,
) -> anyhow::Result<u64> {
    let d = topics.len() as u64;
    // This connection's reports: every k whose device (k mod D) maps to it.
    let mine: Vec<u64> = (0..o.count)
        .filter(|k| (k % d) as usize % conns == c)
        .collect();
    let n = mine.len() as u64;
    let mut opts = MqttOptions::new(format!("{}-{c}", o.prefix), "127.0.0.1", o.port);
    opts.set_keep_alive(Duration::from_secs(60))
        .set_inflight(o.inflight.max(1))
        .set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut eventloop) = AsyncClient::new(opts, 1000);
    let mut net = NetworkOptions::new();
    net.set_tcp_nodelay(true);
    eventloop.set_network_options(net);
    let qos = if o.qos == 0 {
        QoS::AtMostOnce
    } else {
        QoS::AtLeastOnce
    };
    let per_conn_rate = o.rate as f64 / conns as f64;
    let seq_base = o.seq_base;
    let sender = {
        let client = client.clone();
        let topics = topics.to_vec();
        tokio::spawn(async move {
            let mut body = String::with_capacity(256);
            for (i, k) in mine.into_iter().enumerate() {
                if per_conn_rate > 0.0 {
                    let due = started + Duration::from_secs_f64(i as f64 / per_conn_rate);
                    if due > Instant::now() + Duration::from_micros(500) {
                        tokio::time::sleep_until(due).await;
                    }
                }
                let seq = seq_base + k / d + 1;
                workload::payload(&mut body, seq, &workload::stamp(Utc::now()));
                client
                    .publish(
                        &topics[(k % d) as usize],
                        qos,
                        false,
                        body.as_bytes().to_vec(),
                    )
                    .await?;
            }
            anyhow::Ok(())
        })
    };
    let mut done = 0u64;
    while done < n {
        match eventloop.poll().await.context("publisher connection")? {
            Event::Incoming(Packet::PubAck(_)) if qos == QoS::AtLeastOnce => done += 1,
            Event::Outgoing(Outgoing::Publish(_)) if qos == QoS::AtMostOnce => done += 1,
            _ => {}
        }
    }
    sender.await??;
    client.disconnect().await?;
    // Let the DISCONNECT go out (QoS 0 publishes before it are then written too).
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        loop {
            match eventloop.poll().await {
                Ok(Event::Outgoing(Outgoing::Disconnect)) | Err(_) => break,
                _ => {}
            }
        }
    })
    .await;
    Ok(n)
}
