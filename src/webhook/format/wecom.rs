//! WeCom (企业微信) group robot: one markdown message in WeCom's three colours, cut to the
//! robot's size limit.

use std::borrow::Cow;

use serde_json::{Value, json};

use super::Language;
use super::text::{Lang, Tone, fields, title};
use crate::webhook::model::AlertEvent;

/// WeCom rejects markdown content over 4096 bytes (UTF-8).
pub const WECOM_MAX_CONTENT_BYTES: usize = 4096;

pub(super) fn wecom(e: &AlertEvent, language: Language) -> Value {
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
