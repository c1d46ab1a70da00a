//! Property-based fuzzing (proptest) of everything that parses outside input: the payload decoder
//! (the cameras' formats too: mutated Hikvision, Xovis, Axis and Dahua payloads),
//! the topic parser, and the config loader with the registry builder. Arbitrary bytes, plus
//! structure-aware generators: JSON-like text with wrong types, huge numbers, NaN/Infinity tokens,
//! deep nesting, duplicate keys, invalid UTF-8, mutated valid reports, 1 MiB payloads and arrays
//! of 100k elements; for the config, arbitrary text and mutations of real registries.
//!
//! The light run is part of the normal suite; `scripts/fuzz` runs the heavy one (`--ignored`,
//! release mode, `FUZZ_CASES` per target) and prints how many inputs were executed. `cargo fuzz`
//! (libFuzzer, coverage-guided) needs a nightly toolchain, which cannot be installed here.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use chrono::{DateTime, SubsecRound, TimeDelta, Utc};
use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, TestCaseError, TestRunner};
use visitorflow::config::{Config, EMBEDDED_DEFAULT, IngestConfig};
use visitorflow::decode::{self, CountReport, Limits, Reject, TopicKind};
use visitorflow::registry::Registry;

const DEVICES: &str = include_str!("data/one-area.toml");
/// Cameras in their own formats (Hikvision, Xovis; polled Axis, Dahua, Hikvision).
const CAMERAS: &str = include_str!("data/cameras.toml");

struct Target {
    registry: Registry,
    /// The cameras' formats: XML, whole-push refusals of a body that is not the device's.
    cameras: bool,
    limits: Limits,
    received: DateTime<Utc>,
    /// Reports that decoded: the generators must reach the accepting paths too.
    accepted: AtomicU64,
}

impl Target {
    fn new() -> Target {
        Target {
            registry: Config::from_toml(DEVICES).unwrap().registry().unwrap(),
            cameras: false,
            limits: Limits::from(&IngestConfig::default()),
            received: Utc::now().trunc_subsecs(6),
            accepted: AtomicU64::new(0),
        }
    }

    fn cameras() -> Target {
        Target {
            registry: Config::from_toml(CAMERAS).unwrap().registry().unwrap(),
            cameras: true,
            ..Target::new()
        }
    }

    /// A polled device's answer: read as running totals or refused, never a panic.
    fn poll_answer(&self, body: &[u8]) -> Result<(), TestCaseError> {
        for d in self.registry.devices.iter().filter(|d| d.format.polled()) {
            if let Err(e) = decode::polled::read(d, body) {
                prop_assert!(
                    matches!(
                        e,
                        Reject::MalformedJson(_)
                            | Reject::MalformedXml(_)
                            | Reject::InvalidReport(_)
                    ),
                    "poll answer reject {:?}",
                    e
                );
            }
        }
        Ok(())
    }

    /// Decodes `payload` as every device and checks what comes out.
    fn decode(&self, payload: &[u8]) -> Result<(), TestCaseError> {
        for d in &self.registry.devices {
            let mut out = Vec::new();
            let r = decode::decode_counts(d, payload, self.received, &self.limits, &mut out);
            if payload.len() > self.limits.max_payload {
                prop_assert_eq!(&r, &Err(Reject::TooLarge));
            }
            match r {
                Err(e) => {
                    let whole = matches!(
                        e,
                        Reject::TooLarge | Reject::MalformedJson(_) | Reject::TooManyReports
                    ) || (self.cameras
                        && matches!(
                            e,
                            Reject::MalformedXml(_)
                                | Reject::InvalidReport(_)
                                | Reject::NegativeCount
                                | Reject::AbsurdCount
                                | Reject::FutureTimestamp
                                | Reject::TooOld
                        ));
                    prop_assert!(whole, "payload-level reject {:?}", e);
                    prop_assert!(out.is_empty());
                }
                Ok(()) => {
                    prop_assert!(out.len() <= self.limits.max_array);
                    for item in &out {
                        match item {
                            Ok(rep) => self.sane(rep)?,
                            Err(e) => prop_assert!(
                                matches!(
                                    e,
                                    Reject::InvalidReport(_)
                                        | Reject::NegativeCount
                                        | Reject::AbsurdCount
                                        | Reject::FutureTimestamp
                                        | Reject::TooOld
                                ),
                                "report-level reject {:?}",
                                e
                            ),
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// What every accepted report satisfies, whatever the input was.
    fn sane(&self, r: &CountReport) -> Result<(), TestCaseError> {
        self.accepted.fetch_add(1, Ordering::Relaxed);
        prop_assert!(r.entries <= self.limits.max_count && r.exits <= self.limits.max_count);
        prop_assert!(r.seq <= i64::MAX as u64);
        prop_assert!(r.ts - self.received <= self.limits.max_future);
        prop_assert!(self.received - r.ts <= self.limits.max_age);
        prop_assert_eq!(r.ts, r.ts.trunc_subsecs(6));
        prop_assert_eq!(r.total_entries.is_some(), r.total_exits.is_some());
        prop_assert!(r.total_entries.is_none_or(|t| t <= i64::MAX as u64));
        Ok(())
    }
}

// --- Generators ------------------------------------------------------------------------------

fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        (0u32..20_000).prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|f| f.to_string()),
        "[0-9]{19,400}",
        "-[0-9]{19,40}",
        Just("-0".to_string()),
        Just("1e999".to_string()),
        Just("-1e-999".to_string()),
        Just("9223372036854775808".to_string()),
        Just("18446744073709551616".to_string()),
        Just("NaN".to_string()),
        Just("Infinity".to_string()),
        Just("-Infinity".to_string()),
        Just("0x10".to_string()),
        Just("01".to_string()),
    ]
}

fn timestamp() -> impl Strategy<Value = String> {
    let now = Utc::now();
    prop_oneof![
        8 => (-3_000_000i64..600).prop_map(move |s| (now + TimeDelta::seconds(s)).to_rfc3339()),
        1 => any::<i64>().prop_map(|s| DateTime::from_timestamp(s % 253_402_300_799, 0)
            .map_or("x".into(), |t| t.to_rfc3339())),
        1 => Just("9999-12-31T23:59:59Z".to_string()),
        1 => Just("+275760-09-13T00:00:00Z".to_string()),
        1 => Just("1900-01-01T00:00:00+14:00".to_string()),
        1 => Just("2026-02-30T25:61:61Z".to_string()),
        1 => Just("yesterday".to_string()),
        1 => "[0-9T:+Z.-]{0,40}",
    ]
    .prop_map(|t| format!("\"{t}\""))
}

fn json_string() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>().prop_map(|s| serde_json::to_string(&s).unwrap()),
        Just(r#""\ud800""#.to_string()), // lone surrogate escape
        Just(r#""\u0000""#.to_string()),
        Just("\"unterminated".to_string()),
        Just(r#""\x""#.to_string()),
    ]
}

const KEYS: &[&str] = &[
    "seq",
    "ts",
    "in",
    "out",
    "period_s",
    "total_in",
    "total_out",
    "fCnt",
    "time",
    "timestamp",
    "line_1_period_in",
    "line_1_period_out",
    "line_1_total_in",
    "line_1_total_out",
    "line_2_period_in",
    "line_2_period_out",
    "line_2_total_in",
    "line_2_total_out",
    "line_3_period_in",
    "online",
    "",
];

/// JSON-like text: right and wrong types in every field, duplicate keys, nesting.
fn json_like() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        number(),
        timestamp(),
        json_string(),
        Just("null".to_string()),
        Just("true".to_string()),
        Just("false".to_string()),
    ];
    leaf.prop_recursive(6, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(|v| format!("[{}]", v.join(","))),
            prop::collection::vec(
                (
                    prop_oneof![
                        prop::sample::select(KEYS).prop_map(str::to_string),
                        "[a-z_]{1,12}"
                    ],
                    inner
                ),
                0..10
            )
            .prop_map(|kv| {
                let body: Vec<String> = kv.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
                format!("{{{}}}", body.join(","))
            }),
        ]
    })
}

/// Mostly well-formed reports (the decoder's happy path and its edges).
fn report_like() -> impl Strategy<Value = String> {
    (
        prop_oneof![3 => (0u64..1 << 62).prop_map(|s| s.to_string()), 1 => number()],
        prop::option::of(timestamp()),
        prop_oneof![3 => (0u32..12_000).prop_map(|n| n.to_string()), 1 => number()],
        prop_oneof![3 => (0u32..12_000).prop_map(|n| n.to_string()), 1 => number()],
        prop::option::of(prop_oneof![
            3 => (0u64..1 << 40, 0u64..1 << 40).prop_map(|(a, b)| (a.to_string(), b.to_string())),
            1 => (number(), number()),
        ]),
    )
        .prop_map(|(seq, ts, i, o, totals)| {
            let mut f = vec![
                format!("\"seq\":{seq}"),
                format!("\"in\":{i}"),
                format!("\"out\":{o}"),
            ];
            if let Some(ts) = ts {
                f.push(format!("\"ts\":{ts}"));
            }
            if let Some((a, b)) = totals {
                f.push(format!("\"total_in\":{a}"));
                f.push(format!("\"total_out\":{b}"));
            }
            format!("{{{}}}", f.join(","))
        })
}

/// A valid-looking payload, then bytes flipped, inserted (invalid UTF-8 among them) or cut.
fn mutated() -> impl Strategy<Value = Vec<u8>> {
    (
        prop_oneof![report_like(), json_like()],
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..6),
    )
        .prop_map(|(text, edits)| {
            let mut b = text.into_bytes();
            for (at, byte, op) in edits {
                if b.is_empty() {
                    b.push(byte);
                    continue;
                }
                let i = at.index(b.len());
                match op {
                    0 => b[i] = byte,
                    1 => b.insert(i, byte | 0x80),
                    _ => b.truncate(i),
                }
            }
            b
        })
}

/// A real camera payload with a few bytes changed, inserted or cut off.
fn camera_mutated() -> impl Strategy<Value = Vec<u8>> {
    let seeds = [
        include_str!("data/vendor/hikvision-timerange.xml"),
        include_str!("data/vendor/hikvision-timerange-region.xml"),
        include_str!("data/vendor/hikvision-realtime-isapi20.xml"),
        include_str!("data/vendor/xovis-line-count.json"),
        include_str!("data/vendor/axis-live-sum.json"),
        include_str!("data/vendor/dahua-getsummary.txt"),
        include_str!("data/vendor/hikvision-counting-search.xml"),
    ];
    (
        prop::sample::select(seeds.to_vec()),
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 0..6),
    )
        .prop_map(|(seed, edits)| {
            let mut b = seed.as_bytes().to_vec();
            for (at, byte, op) in edits {
                if b.is_empty() {
                    b.push(byte);
                    continue;
                }
                let i = at.index(b.len());
                match op {
                    0 => b[i] = byte,
                    1 => b.insert(i, byte),
                    _ => b.truncate(i),
                }
            }
            b
        })
}

fn deep() -> impl Strategy<Value = String> {
    (1usize..200_000, any::<bool>()).prop_map(|(n, obj)| {
        if obj {
            format!(
                "{}1{}",
                r#"{"seq":"#.repeat(n.min(40_000)),
                "}".repeat(n.min(40_000))
            )
        } else {
            format!("{}{}", "[".repeat(n), "]".repeat(n))
        }
    })
}

fn big() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        // 1 MiB: refused by size before parsing.
        (0u8..=255).prop_map(|b| vec![b; 1 << 20]),
        // 100k elements, under the size limit: refused by count after parsing.
        (any::<bool>()).prop_map(|reports| {
            let item = if reports { r#"{"seq":1}"# } else { "1" };
            let n = if reports { 25_000 } else { 100_000 };
            format!("[{}]", vec![item; n].join(",")).into_bytes()
        }),
        // Right at the limit.
        Just(format!(r#"{{"seq":1,"pad":"{}"}}"#, "x".repeat(256 * 1024 - 19)).into_bytes()),
    ]
}

fn topic() -> impl Strategy<Value = String> {
    let segment = prop_oneof![
        Just("vf".to_string()),
        Just("area".to_string()),
        Just("gate".to_string()),
        Just("counts".to_string()),
        Just("status".to_string()),
        Just("".to_string()),
        Just("+".to_string()),
        Just("#".to_string()),
        Just("..".to_string()),
        Just("c\u{430}nyon".to_string()),
        "[a-z0-9_.+#-]{0,8}",
        any::<String>(),
    ];
    prop_oneof![
        any::<String>(),
        prop::collection::vec(segment, 0..7).prop_map(|s| s.join("/")),
    ]
}

const HOSTILE_VALUES: &[&str] = &[
    "-1",
    "0",
    "99999999999999999999",
    "1e999",
    "nan",
    "inf",
    "\"\"",
    "\"25:99\"",
    "\"Mars/Olympus\"",
    "\"../x\"",
    "\"county\"",
    "\"area\"",
    "[]",
    "{}",
    "\"reversed\"",
    "\"milesight_vs13x\"",
    "[{ line = 9 }]",
    "\"\u{202e}evil\"",
    "true",
];

/// A real registry with lines deleted, duplicated or swapped, values replaced by hostile ones,
/// random bytes inserted, or cut short.
fn toml_mutation(base: &'static str) -> impl Strategy<Value = String> {
    let ops = prop::collection::vec(
        (
            0u8..6,
            any::<prop::sample::Index>(),
            any::<prop::sample::Index>(),
            prop::sample::select(HOSTILE_VALUES),
            any::<u8>(),
        ),
        1..6,
    );
    ops.prop_map(move |ops| {
        let mut lines: Vec<String> = base.lines().map(str::to_string).collect();
        for (op, a, b, value, byte) in ops {
            if lines.is_empty() {
                break;
            }
            let (i, j) = (a.index(lines.len()), b.index(lines.len()));
            match op {
                0 => {
                    lines.remove(i);
                }
                1 => {
                    let l = lines[i].clone();
                    lines.insert(j, l);
                }
                2 => lines.swap(i, j),
                3 => {
                    if let Some((k, _)) = lines[i].split_once('=') {
                        lines[i] = format!("{k}= {value}");
                    }
                }
                4 => {
                    let l = &mut lines[i];
                    let at = b.index(l.len() + 1);
                    let at = (0..=at).rev().find(|&k| l.is_char_boundary(k)).unwrap_or(0);
                    l.insert(at, char::from(byte));
                }
                _ => lines.truncate(i),
            }
        }
        lines.join("\n")
    })
}

/// Loading never panics; a registry that builds is internally consistent.
fn load(text: &str) -> Result<(), TestCaseError> {
    let Ok(cfg) = Config::from_toml(text) else {
        return Ok(());
    };
    if let Ok(reg) = cfg.registry() {
        for d in &reg.devices {
            prop_assert_eq!(reg.targets(d.idx).first(), Some(&d.space));
            prop_assert_eq!(reg.device_idx(d.id.as_str()), Some(d.idx));
        }
        for s in &reg.spaces {
            // Parents form a tree: walking up ends within as many steps as there are spaces.
            let mut at = s.parent;
            for _ in 0..=reg.spaces.len() {
                match at {
                    Some(p) => at = reg.space(p).parent,
                    None => break,
                }
            }
            prop_assert!(at.is_none(), "cycle above {}", s.id);
        }
    }
    Ok(())
}

// --- Runner ----------------------------------------------------------------------------------

/// Runs `check` on `cases` inputs of `strategy`; returns how many were executed.
fn run<S: Strategy>(
    name: &str,
    cases: u32,
    strategy: S,
    check: impl Fn(&S::Value) -> Result<(), TestCaseError>,
) -> u64
where
    S::Value: std::fmt::Debug,
{
    let execs = AtomicU64::new(0);
    let mut runner = TestRunner::new(RunnerConfig {
        cases,
        failure_persistence: None,
        max_shrink_iters: 2_000,
        ..RunnerConfig::default()
    });
    let result = runner.run(&strategy, |v| {
        execs.fetch_add(1, Ordering::Relaxed);
        check(&v)
    });
    if let Err(e) = result {
        panic!("{name}: {e}");
    }
    execs.load(Ordering::Relaxed)
}

/// Every target with `cases` inputs (the size-heavy ones with fewer); returns executions per
/// target and how many reports were accepted along the way.
fn all_targets(cases: u32) -> (Vec<(&'static str, u64)>, u64) {
    let t = Target::new();
    let cams = Target::cameras();
    let few = (cases / 50).max(4);
    let execs = vec![
        (
            "camera decode: mutated vendor payloads",
            run("camera_mutated", cases, camera_mutated(), |b| {
                cams.decode(b)?;
                cams.poll_answer(b)
            }),
        ),
        (
            "camera decode: arbitrary bytes",
            run(
                "camera_bytes",
                cases / 4 + 1,
                prop::collection::vec(any::<u8>(), 0..1024),
                |b| {
                    cams.decode(b)?;
                    cams.poll_answer(b)
                },
            ),
        ),
        (
            "decode: arbitrary bytes",
            run(
                "bytes",
                cases,
                prop::collection::vec(any::<u8>(), 0..2048),
                |b| t.decode(b),
            ),
        ),
        (
            "decode: JSON-like",
            run("json_like", cases, json_like(), |s| t.decode(s.as_bytes())),
        ),
        (
            "decode: arrays of JSON-like",
            run(
                "json_arrays",
                cases / 4 + 1,
                prop::collection::vec(json_like(), 0..50),
                |v| t.decode(format!("[{}]", v.join(",")).as_bytes()),
            ),
        ),
        (
            "decode: report-like",
            run("report_like", cases, report_like(), |s| {
                t.decode(s.as_bytes())
            }),
        ),
        (
            "decode: mutated",
            run("mutated", cases, mutated(), |b| t.decode(b)),
        ),
        (
            "decode: deep nesting",
            run("deep", few, deep(), |s| t.decode(s.as_bytes())),
        ),
        (
            "decode: 1 MiB and 100k elements",
            run("big", few, big(), |b| t.decode(b)),
        ),
        (
            "decode: well-formed round trip",
            run(
                "round_trip",
                cases,
                (0u64..1 << 62, 0u32..=10_000, 0u32..=10_000, 0i64..86_400),
                |&(seq, e, x, ago)| {
                    let ts = t.received - TimeDelta::seconds(ago);
                    let p = format!(
                        r#"{{"out":{x},"seq":{seq},"in":{e},"ts":"{}"}}"#,
                        ts.to_rfc3339()
                    );
                    for (dev, want) in [("gate", (e, x)), ("backwards", (x, e))] {
                        let d = t.registry.device(t.registry.device_idx(dev).unwrap());
                        let mut out = Vec::new();
                        decode::decode_counts(d, p.as_bytes(), t.received, &t.limits, &mut out)
                            .unwrap();
                        let r = out[0].clone().unwrap();
                        prop_assert_eq!(
                            (r.seq, r.entries, r.exits, r.ts),
                            (seq, want.0, want.1, ts)
                        );
                    }
                    Ok(())
                },
            ),
        ),
        (
            "parse_topic",
            run("topic", cases, topic(), |s| {
                match decode::parse_topic("vf", s) {
                    Ok(tp) if tp.kind == TopicKind::Hazard => {
                        prop_assert_eq!(format!("vf/{}/hazard", tp.space), s.clone());
                        prop_assert!(!tp.space.is_empty() && !tp.space.contains(['/', '+', '#']));
                    }
                    Ok(tp) => {
                        let kind = match tp.kind {
                            TopicKind::Counts => "counts",
                            _ => "status",
                        };
                        prop_assert_eq!(format!("vf/{}/{}/{kind}", tp.space, tp.device), s.clone());
                        for seg in [tp.space, tp.device] {
                            prop_assert!(!seg.is_empty() && !seg.contains(['/', '+', '#']));
                        }
                    }
                    Err(e) => prop_assert_eq!(e, Reject::BadTopic),
                }
                Ok(())
            }),
        ),
        (
            "config: arbitrary text",
            run("toml_text", cases, any::<String>(), |s| load(s)),
        ),
        (
            "config: mutated test registry",
            run("toml_test", cases, toml_mutation(common::REGISTRY), |s| {
                load(s)
            }),
        ),
        (
            "config: mutated county registry",
            run(
                "toml_county",
                cases / 4 + 1,
                toml_mutation(EMBEDDED_DEFAULT),
                |s| load(s),
            ),
        ),
    ];
    (
        execs,
        t.accepted.load(Ordering::Relaxed) + cams.accepted.load(Ordering::Relaxed),
    )
}

#[test]
fn light_fuzz() {
    let (execs, accepted) = all_targets(128);
    assert!(execs.iter().all(|(_, n)| *n > 0));
    assert!(
        accepted > 20,
        "the generators reach the accepting paths: {accepted}"
    );
}

/// `scripts/fuzz`: `FUZZ_CASES` inputs per target (default 20,000), release mode.
#[test]
#[ignore]
fn heavy_fuzz() {
    let cases = std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let t = Instant::now();
    let (execs, accepted) = all_targets(cases);
    for (name, n) in &execs {
        println!("{n:>10}  {name}");
    }
    let total: u64 = execs.iter().map(|(_, n)| n).sum();
    println!(
        "heavy fuzz: {total} executions in {:.0} s ({accepted} reports accepted along the way), \
         no panic, no property violated",
        t.elapsed().as_secs_f64()
    );
}
