//! Message formats: one [`AlertEvent`] rendered as the body a receiver expects. Pure: no clock, no
//! I/O; every text shown to a person is built here, in Chinese, English or both.
//!
//! Chinese is the default: the readers are the county bureau and the areas' duty officers. Times
//! are shown in China Standard Time (UTC+8, no daylight saving), whatever the server's zone.

use std::borrow::Cow;
use std::collections::BTreeMap;

use chrono::{DateTime, FixedOffset, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::model::{AlertEvent, AlertState, Severity};

/// What a subscriber's endpoint speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// visitorflow's own schema, version 1 (see [`render`]).
    #[default]
    Json,
    /// Prometheus Alertmanager's webhook payload, version 4: anything that takes Alertmanager
    /// notifications (incident tools, chat bridges) takes these.
    Alertmanager,
    /// DingTalk custom robot, markdown message.
    #[serde(rename = "dingtalk", alias = "ding_talk")]
    DingTalk,
    /// WeCom (企业微信) group robot, markdown message.
    #[serde(rename = "wecom", alias = "we_com")]
    WeCom,
}

/// Language of the human-readable text. The Json format always carries both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Language {
    #[default]
    Zh,
    En,
    /// Chinese first, then English.
    Both,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderOptions {
    pub language: Language,
    /// visitorflow's public base URL (Alertmanager's `externalURL`; included in Json).
    pub external_url: Option<String>,
    /// Alertmanager's `receiver`: the subscription's id.
    pub receiver: String,
}

impl Default for RenderOptions {
    fn default() -> Self {
        Self {
            language: Language::Zh,
            external_url: None,
            receiver: "visitorflow".into(),
        }
    }
}

/// A request body and its media type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub body: Vec<u8>,
    pub content_type: &'static str,
}

/// Alertmanager's `endsAt` for an alert still firing (Go's zero `time.Time`).
pub const ALERTMANAGER_ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// WeCom rejects markdown content over 4096 bytes (UTF-8).
pub const WECOM_MAX_CONTENT_BYTES: usize = 4096;

/// Renders `event` for a `format` endpoint.
///
/// The `Json` format (version "1") is one object; absent values are `null`, never missing:
///
/// ```json
/// {
///   "version": "1",
///   "delivery_id": "tianshan-canyon/instant_level-3",
///   "alert_id": "tianshan-canyon/instant_level",
///   "state": "firing",                  // firing | acknowledged | resolved
///   "severity": "major",                // info | warning | major | critical
///   "kind": "instant_level",
///   "level": "orange",                  // normal | blue | yellow | orange | red | null
///   "space": { "id": "tianshan-canyon", "name_zh": "天山大峡谷", "name_en": "Tianshan Grand Canyon" },
///   "load": 0.92,                       // fraction of the effective capacity
///   "occupancy": 4600,
///   "capacity": { "approved": 6000, "effective": 5000 },
///   "forecast_minutes_to_red": 25.0,
///   "devices": [],                      // silent_devices: the silent counters (at most 50)
///   "devices_total": null,              // how many there are in all
///   "title": { "zh": "【橙色预警】天山大峡谷 瞬时承载 92%", "en": "[ORANGE ALERT] …" },
///   "action": { "zh": "…", "en": "…" },
///   "message": { "zh": "…", "en": "…" },
///   "starts_at": "2026-05-01T02:10:00Z",  // RFC 3339, UTC
///   "ends_at": null,
///   "at": "2026-05-01T02:15:00Z",         // this transition
///   "generator_url": "https://…",
///   "external_url": "https://…"
/// }
/// ```
///
/// A later version may add fields; a receiver should ignore those it does not know.
pub fn render(format: Format, event: &AlertEvent, opts: &RenderOptions) -> Rendered {
    let value = match format {
        Format::Json => json_v1(event, opts),
        Format::Alertmanager => alertmanager(event, opts),
        Format::DingTalk => dingtalk(event, opts.language),
        Format::WeCom => wecom(event, opts.language),
    };
    Rendered {
        body: serde_json::to_vec(&value).expect("a serde_json::Value always serializes"),
        content_type: "application/json",
    }
}

fn json_v1(e: &AlertEvent, opts: &RenderOptions) -> Value {
    json!({
        "version": "1",
        "delivery_id": e.delivery_id,
        "alert_id": e.alert_id,
        "state": e.state.as_str(),
        "severity": e.severity.as_str(),
        "kind": e.kind,
        "level": e.level,
        "space": { "id": e.space_id, "name_zh": e.space_name_zh, "name_en": e.space_name_en },
        "load": e.load.filter(|l| l.is_finite()),
        "occupancy": e.occupancy,
        "capacity": { "approved": e.capacity_approved, "effective": e.capacity_effective },
        "forecast_minutes_to_red": e.forecast_minutes_to_red.filter(|m| m.is_finite()),
        "devices": e.devices,
        "devices_total": e.devices_total,
        "title": { "zh": title(e, Lang::Zh).text(), "en": title(e, Lang::En).text() },
        "action": { "zh": e.action_zh, "en": e.action_en },
        "message": { "zh": e.message_zh, "en": e.message_en },
        "starts_at": rfc3339(e.starts_at),
        "ends_at": e.ends_at.map(rfc3339),
        "at": rfc3339(e.at),
        "generator_url": e.generator_url,
        "external_url": opts.external_url,
    })
}

fn alertmanager(e: &AlertEvent, opts: &RenderOptions) -> Value {
    let mut labels = BTreeMap::new();
    labels.insert("alertname", e.kind.clone());
    labels.insert("space", e.space_id.clone());
    labels.insert("severity", e.severity.as_str().to_owned());
    labels.insert("kind", e.kind.clone());
    if let Some(level) = &e.level {
        labels.insert("level", level.clone());
    }
    let (summary, description, action) = match opts.language {
        Language::Zh => (
            title(e, Lang::Zh).text(),
            e.message_zh.clone(),
            e.action_zh.clone(),
        ),
        Language::En => (
            title(e, Lang::En).text(),
            e.message_en.clone(),
            e.action_en.clone(),
        ),
        Language::Both => (
            format!(
                "{} / {}",
                title(e, Lang::Zh).text(),
                title(e, Lang::En).text()
            ),
            join_nonempty(&e.message_zh, &e.message_en),
            join_nonempty(&e.action_zh, &e.action_en),
        ),
    };
    let annotations = json!({ "summary": summary, "description": description, "action": action });
    // Alertmanager knows no acknowledgement: an acknowledged alert is still firing.
    let status = match e.state {
        AlertState::Resolved => "resolved",
        AlertState::Firing | AlertState::Acknowledged => "firing",
    };
    let ends_at = match e.state {
        AlertState::Resolved => rfc3339(e.ends_at.unwrap_or(e.at)),
        _ => ALERTMANAGER_ZERO_TIME.to_owned(),
    };
    let group_labels: BTreeMap<&str, String> =
        [("alertname", e.kind.clone()), ("space", e.space_id.clone())].into();
    json!({
        "version": "4",
        "groupKey": format!("{{}}:{}", go_label_set(&group_labels)),
        "truncatedAlerts": 0,
        "status": status,
        "receiver": opts.receiver,
        "groupLabels": group_labels,
        "commonLabels": labels,
        "commonAnnotations": annotations,
        "externalURL": opts.external_url.clone().unwrap_or_default(),
        "alerts": [{
            "status": status,
            "labels": labels,
            "annotations": annotations,
            "startsAt": rfc3339(e.starts_at),
            "endsAt": ends_at,
            "generatorURL": e.generator_url.clone().unwrap_or_default(),
            "fingerprint": fingerprint(&labels),
        }],
    })
}

/// Alertmanager's fingerprint of a label set (prometheus/common `LabelSet.Fingerprint`): FNV-1a
/// 64 over the names in order, each name and value followed by a 0xff byte, as 16 hex digits. The
/// same labels give the same fingerprint here as in Alertmanager itself.
pub fn fingerprint(labels: &BTreeMap<&str, String>) -> String {
    let mut h = Fnv1a64::new();
    for (name, value) in labels {
        h.write(name.as_bytes());
        h.write(&[0xff]);
        h.write(value.as_bytes());
        h.write(&[0xff]);
    }
    format!("{:016x}", h.0)
}

struct Fnv1a64(u64);

impl Fnv1a64 {
    fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

/// `{name="value", …}` as Go's Alertmanager prints a label set in a group key.
fn go_label_set(labels: &BTreeMap<&str, String>) -> String {
    let pairs: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}={}", Value::from(v.as_str())))
        .collect();
    format!("{{{}}}", pairs.join(", "))
}

fn dingtalk(e: &AlertEvent, language: Language) -> Value {
    let block = |lang: Lang| {
        let mut s = format!("#### {}\n\n", title(e, lang).text());
        for f in fields(e, lang) {
            s.push_str(&format!("- **{}**{}{}\n", f.label, lang.colon(), f.value));
        }
        if let Some(url) = &e.generator_url {
            s.push_str(&format!("\n[{}]({url})\n", lang.details()));
        }
        s
    };
    let (title_text, text) = match language {
        Language::Zh => (title(e, Lang::Zh).text(), block(Lang::Zh)),
        Language::En => (title(e, Lang::En).text(), block(Lang::En)),
        Language::Both => (
            title(e, Lang::Zh).text(),
            format!("{}\n{}", block(Lang::Zh), block(Lang::En)),
        ),
    };
    let mut v = json!({ "msgtype": "markdown", "markdown": { "title": title_text, "text": text } });
    // Wake the whole group only for a critical alert that has just fired.
    if e.severity == Severity::Critical && e.state == AlertState::Firing {
        v["at"] = json!({ "isAtAll": true });
    }
    v
}

fn wecom(e: &AlertEvent, language: Language) -> Value {
    let block = |lang: Lang| {
        let t = title(e, lang);
        let mut s = format!(
            "**{}{}{}**\n",
            colour(&t.tag, t.tone),
            lang.tag_gap(),
            t.rest
        );
        for f in fields(e, lang) {
            s.push_str(&format!(
                "> {}{}{}\n",
                f.label,
                lang.colon(),
                colour(&f.value, f.tone)
            ));
        }
        if let Some(url) = &e.generator_url {
            s.push_str(&format!("[{}]({url})\n", lang.details()));
        }
        s
    };
    let content = match language {
        Language::Zh => block(Lang::Zh),
        Language::En => block(Lang::En),
        Language::Both => format!("{}\n{}", block(Lang::Zh), block(Lang::En)),
    };
    json!({
        "msgtype": "markdown",
        "markdown": { "content": truncate_bytes(&content, WECOM_MAX_CONTENT_BYTES) },
    })
}

/// The three colours WeCom markdown knows: `info` green, `comment` grey, `warning` orange-red.
fn colour(text: &str, tone: Tone) -> Cow<'_, str> {
    let name = match tone {
        Tone::Alarm => "warning",
        Tone::Calm => "info",
        Tone::Muted => "comment",
        Tone::Plain => return Cow::Borrowed(text),
    };
    Cow::Owned(format!("<font color=\"{name}\">{text}</font>"))
}

fn truncate_bytes(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    const ELLIPSIS: &str = "…";
    let mut end = max - ELLIPSIS.len();
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{ELLIPSIS}", &s[..end])
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lang {
    Zh,
    En,
}

impl Lang {
    fn colon(self) -> &'static str {
        match self {
            Lang::Zh => "：",
            Lang::En => ": ",
        }
    }
    fn tag_gap(self) -> &'static str {
        match self {
            Lang::Zh => "",
            Lang::En => " ",
        }
    }
    fn details(self) -> &'static str {
        match self {
            Lang::Zh => "查看详情",
            Lang::En => "Details",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tone {
    Alarm,
    Calm,
    Muted,
    Plain,
}

struct Title {
    /// `【橙色预警】` / `[ORANGE ALERT]`.
    tag: String,
    /// `天山大峡谷 瞬时承载 92%`.
    rest: String,
    tone: Tone,
}

impl Title {
    fn text(&self) -> String {
        let gap = if self.tag.starts_with('【') { "" } else { " " };
        format!("{}{gap}{}", self.tag, self.rest)
    }
}

/// A level that names a warning colour (not `normal`, not a county's unknown word).
fn warning_colour(e: &AlertEvent) -> Option<&str> {
    e.level
        .as_deref()
        .filter(|l| matches!(*l, "blue" | "yellow" | "orange" | "red"))
}

fn level_word(level: &str, lang: Lang) -> Cow<'_, str> {
    let w = match (level, lang) {
        ("normal", Lang::Zh) => "正常",
        ("blue", Lang::Zh) => "蓝色",
        ("yellow", Lang::Zh) => "黄色",
        ("orange", Lang::Zh) => "橙色",
        ("red", Lang::Zh) => "红色",
        ("normal", Lang::En) => "Normal",
        ("blue", Lang::En) => "Blue",
        ("yellow", Lang::En) => "Yellow",
        ("orange", Lang::En) => "Orange",
        ("red", Lang::En) => "Red",
        _ => return Cow::Borrowed(level),
    };
    Cow::Borrowed(w)
}

fn severity_word(s: Severity, lang: Lang) -> &'static str {
    match (s, lang) {
        (Severity::Info, Lang::Zh) => "提示",
        (Severity::Warning, Lang::Zh) => "警告",
        (Severity::Major, Lang::Zh) => "严重",
        (Severity::Critical, Lang::Zh) => "紧急",
        (Severity::Info, Lang::En) => "info",
        (Severity::Warning, Lang::En) => "warning",
        (Severity::Major, Lang::En) => "major",
        (Severity::Critical, Lang::En) => "critical",
    }
}

fn kind_word(kind: &str, lang: Lang) -> Cow<'_, str> {
    let w = match (kind, lang) {
        ("instant_level", Lang::Zh) => "瞬时承载",
        ("daily_level", Lang::Zh) => "日承载",
        ("forecast_red", Lang::Zh) => "红色预测",
        ("silent_devices", Lang::Zh) => "计数设备无数据",
        ("instant_level", Lang::En) => "instantaneous load",
        ("daily_level", Lang::En) => "daily load",
        ("forecast_red", Lang::En) => "red forecast",
        ("silent_devices", Lang::En) => "silent counters",
        _ => return Cow::Borrowed(kind),
    };
    Cow::Borrowed(w)
}

fn percent(load: Option<f64>) -> Option<String> {
    load.filter(|l| l.is_finite())
        .map(|l| format!("{:.0}%", l * 100.0))
}

/// Worth the warning colour: a yellow level or worse, or a major severity or worse.
fn alarming(e: &AlertEvent) -> bool {
    matches!(e.level.as_deref(), Some("yellow" | "orange" | "red")) || e.severity >= Severity::Major
}

fn title(e: &AlertEvent, lang: Lang) -> Title {
    let (tag, tone) = match (e.state, warning_colour(e)) {
        (AlertState::Resolved, _) => (
            match lang {
                Lang::Zh => "【预警解除】".to_owned(),
                Lang::En => "[RESOLVED]".to_owned(),
            },
            Tone::Calm,
        ),
        (state, colour) => {
            let acked = state == AlertState::Acknowledged;
            let tag = match (lang, colour) {
                (Lang::Zh, Some(c)) => format!("【{}预警{}】", level_word(c, lang), ack_zh(acked)),
                (Lang::Zh, None) => {
                    format!("【{}{}】", severity_word(e.severity, lang), ack_zh(acked))
                }
                (Lang::En, Some(c)) => format!(
                    "[{} ALERT{}]",
                    level_word(c, lang).to_uppercase(),
                    ack_en(acked)
                ),
                (Lang::En, None) => format!(
                    "[{}{}]",
                    severity_word(e.severity, lang).to_uppercase(),
                    ack_en(acked)
                ),
            };
            (
                tag,
                if alarming(e) {
                    Tone::Alarm
                } else {
                    Tone::Muted
                },
            )
        }
    };
    let space = match lang {
        Lang::Zh => &e.space_name_zh,
        Lang::En => &e.space_name_en,
    };
    let mut rest = format!("{space} {}", kind_word(&e.kind, lang));
    if let Some(p) = percent(e.load) {
        rest.push(' ');
        rest.push_str(&p);
    }
    Title { tag, rest, tone }
}

fn ack_zh(acked: bool) -> &'static str {
    if acked { "·已确认" } else { "" }
}

fn ack_en(acked: bool) -> &'static str {
    if acked { " · ACKNOWLEDGED" } else { "" }
}

struct Field {
    label: &'static str,
    value: String,
    tone: Tone,
}

/// The lines under the title, in display order; absent facts are left out.
fn fields(e: &AlertEvent, lang: Lang) -> Vec<Field> {
    let zh = lang == Lang::Zh;
    let mut out = Vec::new();
    let resolved = e.state == AlertState::Resolved;

    let level = match &e.level {
        Some(l) => match lang {
            Lang::Zh => format!(
                "{}（{}）",
                level_word(l, lang),
                severity_word(e.severity, lang)
            ),
            Lang::En => format!(
                "{} ({})",
                level_word(l, lang),
                severity_word(e.severity, lang)
            ),
        },
        None => severity_word(e.severity, lang).to_owned(),
    };
    let level_tone = if resolved {
        Tone::Calm
    } else if alarming(e) {
        Tone::Alarm
    } else {
        Tone::Plain
    };
    out.push(Field {
        label: if zh { "级别" } else { "Level" },
        value: level,
        tone: level_tone,
    });

    // "92%（在场 4600 / 承载量 5000，核定 6000）"
    let mut counts = Vec::new();
    if let Some(o) = e.occupancy {
        counts.push(if zh {
            format!("在场 {o}")
        } else {
            format!("{o} present")
        });
    }
    if let Some(c) = e.capacity_effective {
        counts.push(if zh {
            format!("承载量 {c}")
        } else {
            format!("capacity {c}")
        });
    }
    let mut detail = counts.join(" / ");
    if let Some(a) = e
        .capacity_approved
        .filter(|a| Some(*a) != e.capacity_effective)
    {
        let approved = if zh {
            format!("核定 {a}")
        } else {
            format!("approved {a}")
        };
        detail = if detail.is_empty() {
            approved
        } else if zh {
            format!("{detail}，{approved}")
        } else {
            format!("{detail}; {approved}")
        };
    }
    let load = match (percent(e.load), detail.is_empty()) {
        (Some(p), true) => Some(p),
        (Some(p), false) if zh => Some(format!("{p}（{detail}）")),
        (Some(p), false) => Some(format!("{p} ({detail})")),
        (None, false) => Some(detail),
        (None, true) => None,
    };
    if let Some(value) = load {
        out.push(Field {
            label: if zh { "承载" } else { "Load" },
            value,
            tone: Tone::Plain,
        });
    }

    let forecast = e
        .forecast_minutes_to_red
        .filter(|m| m.is_finite() && *m >= 0.0)
        .filter(|_| !resolved && e.level.as_deref() != Some("red"));
    if let Some(m) = forecast {
        let value = match (m < 1.0, zh) {
            (true, true) => "预计1分钟内达到红色".to_owned(),
            (true, false) => "red expected within a minute".to_owned(),
            (false, true) => format!("预计{}分钟后达到红色", m.ceil() as u64),
            (false, false) => format!("red expected in about {} min", m.ceil() as u64),
        };
        out.push(Field {
            label: if zh { "预测" } else { "Forecast" },
            value,
            tone: Tone::Alarm,
        });
    }

    let (action, message) = if zh {
        (&e.action_zh, &e.message_zh)
    } else {
        (&e.action_en, &e.message_en)
    };
    if !action.is_empty() {
        out.push(Field {
            label: if zh { "处置" } else { "Action" },
            value: action.clone(),
            tone: Tone::Plain,
        });
    }
    if !message.is_empty() {
        out.push(Field {
            label: if zh { "说明" } else { "Details" },
            value: message.clone(),
            tone: Tone::Plain,
        });
    }
    if e.state != AlertState::Firing {
        out.push(Field {
            label: if zh { "开始" } else { "Started" },
            value: cst(e.starts_at, lang),
            tone: Tone::Muted,
        });
    }
    out.push(Field {
        label: if zh { "时间" } else { "Time" },
        value: cst(e.at, lang),
        tone: Tone::Muted,
    });
    out
}

/// `2026-05-01 10:15（北京时间）`: China Standard Time, which has no daylight saving.
fn cst(t: DateTime<Utc>, lang: Lang) -> String {
    let offset = FixedOffset::east_opt(8 * 3600).expect("UTC+8 is a valid offset");
    let local = t.with_timezone(&offset).format("%Y-%m-%d %H:%M");
    match lang {
        Lang::Zh => format!("{local}（北京时间）"),
        Lang::En => format!("{local} (UTC+8)"),
    }
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

fn join_nonempty(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (false, false) => format!("{a}\n{b}"),
        (false, true) => a.to_owned(),
        _ => b.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhook::model::tests::orange;
    use chrono::TimeZone;

    fn value(format: Format, e: &AlertEvent, opts: &RenderOptions) -> Value {
        let r = render(format, e, opts);
        assert_eq!(r.content_type, "application/json");
        serde_json::from_slice(&r.body).unwrap()
    }

    fn zh() -> RenderOptions {
        RenderOptions {
            language: Language::Zh,
            external_url: Some("https://vf.example.org".into()),
            receiver: "county-bureau".into(),
        }
    }

    fn resolved() -> AlertEvent {
        let mut e = orange();
        e.delivery_id = "tianshan-canyon/instant_level-4".into();
        e.state = AlertState::Resolved;
        e.level = Some("normal".into());
        e.severity = Severity::Info;
        e.load = Some(0.63);
        e.occupancy = Some(3150);
        e.forecast_minutes_to_red = None;
        e.action_zh = "恢复正常入园".into();
        e.at = Utc.with_ymd_and_hms(2026, 5, 1, 3, 40, 0).unwrap();
        e.ends_at = Some(e.at);
        e
    }

    #[test]
    fn format_names_in_config() {
        let f: Vec<Format> =
            serde_json::from_str(r#"["json","alertmanager","dingtalk","wecom","ding_talk"]"#)
                .unwrap();
        assert_eq!(
            f,
            [
                Format::Json,
                Format::Alertmanager,
                Format::DingTalk,
                Format::WeCom,
                Format::DingTalk
            ]
        );
        assert_eq!(serde_json::to_value(Format::WeCom).unwrap(), "wecom");
        let l: Language = serde_json::from_str(r#""both""#).unwrap();
        assert_eq!(l, Language::Both);
    }

    #[test]
    fn json_v1_golden() {
        let v = value(Format::Json, &orange(), &zh());
        let expected = json!({
            "version": "1",
            "delivery_id": "tianshan-canyon/instant_level-3",
            "alert_id": "tianshan-canyon/instant_level",
            "state": "firing",
            "severity": "major",
            "kind": "instant_level",
            "level": "orange",
            "space": { "id": "tianshan-canyon", "name_zh": "天山大峡谷",
                       "name_en": "Tianshan Grand Canyon" },
            "load": 0.92,
            "occupancy": 4600,
            "capacity": { "approved": 6000, "effective": 5000 },
            "forecast_minutes_to_red": 25.0,
            "devices": [],
            "devices_total": null,
            "title": { "zh": "【橙色预警】天山大峡谷 瞬时承载 92%",
                       "en": "[ORANGE ALERT] Tianshan Grand Canyon instantaneous load 92%" },
            "action": { "zh": "入口限流，启用分流停车场",
                        "en": "Meter the entrances; open the overflow car park" },
            "message": { "zh": "瞬时游客量达到有效承载量的92%",
                         "en": "Visitors present reached 92% of effective capacity" },
            "starts_at": "2026-05-01T02:10:00Z",
            "ends_at": null,
            "at": "2026-05-01T02:15:00Z",
            "generator_url": "https://vf.example.org/alerts/tianshan-canyon/instant_level",
            "external_url": "https://vf.example.org",
        });
        assert_eq!(v, expected);
    }

    #[test]
    fn json_v1_absent_values_are_null_and_non_finite_load_dropped() {
        let mut e = resolved();
        e.level = None;
        e.load = Some(f64::NAN);
        e.generator_url = None;
        let v = value(Format::Json, &e, &RenderOptions::default());
        assert_eq!(v["level"], Value::Null);
        assert_eq!(v["load"], Value::Null);
        assert_eq!(v["ends_at"], "2026-05-01T03:40:00Z");
        assert_eq!(v["external_url"], Value::Null);
        assert_eq!(v["title"]["zh"], "【预警解除】天山大峡谷 瞬时承载");
    }

    #[test]
    fn alertmanager_v4_shape_field_by_field() {
        let v = value(Format::Alertmanager, &orange(), &zh());
        let top: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        let mut want = vec![
            "version",
            "groupKey",
            "truncatedAlerts",
            "status",
            "receiver",
            "groupLabels",
            "commonLabels",
            "commonAnnotations",
            "externalURL",
            "alerts",
        ];
        want.sort();
        assert_eq!(top, want, "exactly Alertmanager's top-level fields");
        assert_eq!(v["version"], "4");
        assert_eq!(
            v["groupKey"],
            r#"{}:{alertname="instant_level", space="tianshan-canyon"}"#
        );
        assert_eq!(v["truncatedAlerts"], 0);
        assert_eq!(v["status"], "firing");
        assert_eq!(v["receiver"], "county-bureau");
        assert_eq!(
            v["groupLabels"],
            json!({ "alertname": "instant_level", "space": "tianshan-canyon" })
        );
        let labels = json!({
            "alertname": "instant_level", "space": "tianshan-canyon", "severity": "major",
            "level": "orange", "kind": "instant_level",
        });
        let annotations = json!({
            "summary": "【橙色预警】天山大峡谷 瞬时承载 92%",
            "description": "瞬时游客量达到有效承载量的92%",
            "action": "入口限流，启用分流停车场",
        });
        assert_eq!(v["commonLabels"], labels);
        assert_eq!(v["commonAnnotations"], annotations);
        assert_eq!(v["externalURL"], "https://vf.example.org");

        let alerts = v["alerts"].as_array().unwrap();
        assert_eq!(alerts.len(), 1);
        let a = &alerts[0];
        let keys: Vec<&str> = a.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "annotations",
                "endsAt",
                "fingerprint",
                "generatorURL",
                "labels",
                "startsAt",
                "status"
            ]
        );
        assert_eq!(a["status"], "firing");
        assert_eq!(a["labels"], labels);
        assert_eq!(a["annotations"], annotations);
        assert_eq!(a["startsAt"], "2026-05-01T02:10:00Z");
        assert_eq!(a["endsAt"], ALERTMANAGER_ZERO_TIME);
        assert_eq!(
            a["generatorURL"],
            "https://vf.example.org/alerts/tianshan-canyon/instant_level"
        );
        let fp = a["fingerprint"].as_str().unwrap();
        assert_eq!(fp.len(), 16);
        assert!(
            fp.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        // All values are strings, as Alertmanager's Go types require.
        for m in [&a["labels"], &a["annotations"], &v["commonLabels"]] {
            assert!(m.as_object().unwrap().values().all(Value::is_string));
        }
    }

    #[test]
    fn alertmanager_resolved_and_acknowledged() {
        let v = value(Format::Alertmanager, &resolved(), &RenderOptions::default());
        assert_eq!(v["status"], "resolved");
        assert_eq!(v["alerts"][0]["status"], "resolved");
        assert_eq!(v["alerts"][0]["endsAt"], "2026-05-01T03:40:00Z");
        assert_eq!(v["externalURL"], "");
        assert_eq!(v["receiver"], "visitorflow");

        let mut e = orange();
        e.state = AlertState::Acknowledged;
        let v = value(Format::Alertmanager, &e, &RenderOptions::default());
        assert_eq!(
            v["status"], "firing",
            "Alertmanager has no acknowledged state"
        );
        assert_eq!(v["alerts"][0]["endsAt"], ALERTMANAGER_ZERO_TIME);
        assert_eq!(
            v["alerts"][0]["annotations"]["summary"],
            "【橙色预警·已确认】天山大峡谷 瞬时承载 92%"
        );

        let both = RenderOptions {
            language: Language::Both,
            ..RenderOptions::default()
        };
        let v = value(Format::Alertmanager, &orange(), &both);
        assert_eq!(
            v["alerts"][0]["annotations"]["summary"],
            "【橙色预警】天山大峡谷 瞬时承载 92% / [ORANGE ALERT] Tianshan Grand Canyon instantaneous load 92%"
        );
    }

    #[test]
    fn fingerprint_is_alertmanagers_fnv1a() {
        // FNV-1a 64 of nothing is the offset basis; prometheus/common's empty label set gives it.
        assert_eq!(fingerprint(&BTreeMap::new()), "cbf29ce484222325");
        let mut h = Fnv1a64::new();
        h.write(b"a");
        assert_eq!(
            h.0, 0xaf63_dc4c_8601_ec8c,
            "published FNV-1a 64 vector for \"a\""
        );

        let labels = |sev: &str| -> BTreeMap<&str, String> {
            [
                ("alertname", "instant_level".to_owned()),
                ("severity", sev.to_owned()),
            ]
            .into()
        };
        assert_eq!(fingerprint(&labels("major")), fingerprint(&labels("major")));
        assert_ne!(
            fingerprint(&labels("major")),
            fingerprint(&labels("critical"))
        );
        // The separator keeps ("ab","c") and ("a","bc") apart.
        let ab: BTreeMap<&str, String> = [("ab", "c".to_owned())].into();
        let a: BTreeMap<&str, String> = [("a", "bc".to_owned())].into();
        assert_ne!(fingerprint(&ab), fingerprint(&a));

        // Stable across transitions that keep the labels.
        let mut later = orange();
        later.load = Some(0.95);
        later.delivery_id = "other".into();
        let fp = |e: &AlertEvent| {
            value(Format::Alertmanager, e, &zh())["alerts"][0]["fingerprint"].clone()
        };
        assert_eq!(fp(&orange()), fp(&later));
    }

    #[test]
    fn dingtalk_golden_zh() {
        let v = value(Format::DingTalk, &orange(), &zh());
        assert_eq!(v["msgtype"], "markdown");
        assert_eq!(
            v["markdown"]["title"],
            "【橙色预警】天山大峡谷 瞬时承载 92%"
        );
        assert!(v.get("at").is_none(), "only critical alerts @ everyone");
        let text = v["markdown"]["text"].as_str().unwrap();
        let lines: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
        assert_eq!(
            lines,
            [
                "#### 【橙色预警】天山大峡谷 瞬时承载 92%",
                "- **级别**：橙色（严重）",
                "- **承载**：92%（在场 4600 / 承载量 5000，核定 6000）",
                "- **预测**：预计25分钟后达到红色",
                "- **处置**：入口限流，启用分流停车场",
                "- **说明**：瞬时游客量达到有效承载量的92%",
                "- **时间**：2026-05-01 10:15（北京时间）",
                "[查看详情](https://vf.example.org/alerts/tianshan-canyon/instant_level)",
            ]
        );
    }

    #[test]
    fn dingtalk_critical_ats_everyone_only_when_firing() {
        let mut e = orange();
        e.severity = Severity::Critical;
        e.level = Some("red".into());
        e.load = Some(1.0);
        let v = value(Format::DingTalk, &e, &zh());
        assert_eq!(v["at"], json!({ "isAtAll": true }));
        assert_eq!(
            v["markdown"]["title"],
            "【红色预警】天山大峡谷 瞬时承载 100%"
        );
        let text = v["markdown"]["text"].as_str().unwrap();
        assert!(!text.contains("预测"), "no forecast once red: {text}");

        e.state = AlertState::Acknowledged;
        let v = value(Format::DingTalk, &e, &zh());
        assert!(v.get("at").is_none());
        assert!(
            v["markdown"]["text"]
                .as_str()
                .unwrap()
                .contains("- **开始**：2026-05-01 10:10（北京时间）")
        );
    }

    #[test]
    fn dingtalk_english_and_both() {
        let en = RenderOptions {
            language: Language::En,
            ..zh()
        };
        let v = value(Format::DingTalk, &orange(), &en);
        assert_eq!(
            v["markdown"]["title"],
            "[ORANGE ALERT] Tianshan Grand Canyon instantaneous load 92%"
        );
        let text = v["markdown"]["text"].as_str().unwrap();
        assert!(
            text.contains("- **Forecast**: red expected in about 25 min\n"),
            "{text}"
        );
        assert!(text.contains("- **Load**: 92% (4600 present / capacity 5000; approved 6000)\n"));
        assert!(text.contains("- **Time**: 2026-05-01 10:15 (UTC+8)\n"));

        let both = RenderOptions {
            language: Language::Both,
            ..zh()
        };
        let v = value(Format::DingTalk, &orange(), &both);
        assert_eq!(
            v["markdown"]["title"],
            "【橙色预警】天山大峡谷 瞬时承载 92%"
        );
        let text = v["markdown"]["text"].as_str().unwrap();
        let zh_at = text.find("#### 【橙色预警】").unwrap();
        let en_at = text.find("#### [ORANGE ALERT]").unwrap();
        assert!(zh_at < en_at, "Chinese first");
    }

    #[test]
    fn dingtalk_resolved() {
        let v = value(Format::DingTalk, &resolved(), &zh());
        assert_eq!(
            v["markdown"]["title"],
            "【预警解除】天山大峡谷 瞬时承载 63%"
        );
        let text = v["markdown"]["text"].as_str().unwrap();
        assert!(text.contains("- **级别**：正常（提示）\n"), "{text}");
        assert!(text.contains("- **处置**：恢复正常入园\n"));
        assert!(text.contains("- **开始**：2026-05-01 10:10（北京时间）\n"));
        assert!(text.contains("- **时间**：2026-05-01 11:40（北京时间）\n"));
    }

    #[test]
    fn wecom_golden_zh() {
        let v = value(Format::WeCom, &orange(), &zh());
        assert_eq!(v.as_object().unwrap().len(), 2);
        assert_eq!(v["msgtype"], "markdown");
        assert_eq!(v["markdown"].as_object().unwrap().len(), 1);
        let content = v["markdown"]["content"].as_str().unwrap();
        let lines: Vec<&str> = content.lines().collect();
        assert_eq!(
            lines,
            [
                "**<font color=\"warning\">【橙色预警】</font>天山大峡谷 瞬时承载 92%**",
                "> 级别：<font color=\"warning\">橙色（严重）</font>",
                "> 承载：92%（在场 4600 / 承载量 5000，核定 6000）",
                "> 预测：<font color=\"warning\">预计25分钟后达到红色</font>",
                "> 处置：入口限流，启用分流停车场",
                "> 说明：瞬时游客量达到有效承载量的92%",
                "> 时间：<font color=\"comment\">2026-05-01 10:15（北京时间）</font>",
                "[查看详情](https://vf.example.org/alerts/tianshan-canyon/instant_level)",
            ]
        );
    }

    #[test]
    fn wecom_resolved_is_green_and_long_text_is_cut() {
        let v = value(Format::WeCom, &resolved(), &zh());
        let content = v["markdown"]["content"].as_str().unwrap();
        assert!(
            content.starts_with("**<font color=\"info\">【预警解除】</font>"),
            "{content}"
        );
        assert!(content.contains("> 级别：<font color=\"info\">正常（提示）</font>"));

        let mut e = orange();
        e.message_zh = "拥堵".repeat(2000);
        let both = RenderOptions {
            language: Language::Both,
            ..zh()
        };
        let v = value(Format::WeCom, &e, &both);
        let content = v["markdown"]["content"].as_str().unwrap();
        assert!(content.len() <= WECOM_MAX_CONTENT_BYTES);
        assert!(content.ends_with('…'));
    }

    #[test]
    fn unknown_level_and_kind_are_shown_as_given() {
        let mut e = orange();
        e.level = Some("purple".into());
        e.kind = "queue_length".into();
        e.load = None;
        e.severity = Severity::Warning;
        let v = value(Format::DingTalk, &e, &zh());
        assert_eq!(v["markdown"]["title"], "【警告】天山大峡谷 queue_length");
        let text = v["markdown"]["text"].as_str().unwrap();
        assert!(text.contains("- **级别**：purple（警告）\n"));
        assert!(
            text.contains("- **承载**：在场 4600 / 承载量 5000，核定 6000\n"),
            "{text}"
        );
    }

    #[test]
    fn forecast_under_a_minute() {
        let mut e = orange();
        e.forecast_minutes_to_red = Some(0.4);
        let v = value(Format::DingTalk, &e, &zh());
        assert!(
            v["markdown"]["text"]
                .as_str()
                .unwrap()
                .contains("预计1分钟内达到红色")
        );
        e.forecast_minutes_to_red = Some(24.2);
        let v = value(Format::DingTalk, &e, &zh());
        assert!(
            v["markdown"]["text"]
                .as_str()
                .unwrap()
                .contains("预计25分钟后达到红色")
        );
    }
}
