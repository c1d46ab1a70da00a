//! The text a person reads, shared by the formats: an alert's title (tag, tone and the rest),
//! the lines under it in display order, the words for levels, severities and kinds, and times in
//! China Standard Time, in Chinese or English.

use std::borrow::Cow;

use chrono::{DateTime, FixedOffset, Utc};

use crate::rules::Severity;
use crate::webhook::model::{AlertEvent, AlertState};

/// One language of a text block ([`super::Language::Both`] is two blocks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Lang {
    Zh,
    En,
}

impl Lang {
    pub(super) fn colon(self) -> &'static str {
        match self {
            Lang::Zh => "：",
            Lang::En => ": ",
        }
    }
    pub(super) fn tag_gap(self) -> &'static str {
        match self {
            Lang::Zh => "",
            Lang::En => " ",
        }
    }
    pub(super) fn details(self) -> &'static str {
        match self {
            Lang::Zh => "查看详情",
            Lang::En => "Details",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Tone {
    Alarm,
    Calm,
    Muted,
    Plain,
}

pub(super) struct Title {
    /// `【橙色预警】` / `[ORANGE ALERT]`.
    pub(super) tag: String,
    /// `天山大峡谷 瞬时承载 92%`.
    pub(super) rest: String,
    pub(super) tone: Tone,
}

impl Title {
    pub(super) fn text(&self) -> String {
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
        ("admission", Lang::Zh) => "售票",
        ("oversold", Lang::Zh) => "超售",
        ("instant_level", Lang::En) => "instantaneous load",
        ("daily_level", Lang::En) => "daily load",
        ("forecast_red", Lang::En) => "red forecast",
        ("silent_devices", Lang::En) => "silent counters",
        ("admission", Lang::En) => "ticket sales",
        ("oversold", Lang::En) => "over-sold slots",
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

pub(super) fn title(e: &AlertEvent, lang: Lang) -> Title {
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

pub(super) struct Field {
    pub(super) label: &'static str,
    pub(super) value: String,
    pub(super) tone: Tone,
}

/// The lines under the title, in display order; absent facts are left out.
pub(super) fn fields(e: &AlertEvent, lang: Lang) -> Vec<Field> {
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
