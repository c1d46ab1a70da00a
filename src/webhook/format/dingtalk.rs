//! DingTalk custom robot: one markdown message; a critical alert that has just fired @-mentions
//! the whole group.

use serde_json::{Value, json};

use super::Language;
use super::text::{Lang, fields, title};
use crate::rules::Severity;
use crate::webhook::model::{AlertEvent, AlertState};

pub(super) fn dingtalk(e: &AlertEvent, language: Language) -> Value {
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
