use std::collections::BTreeMap;

use chrono::TimeZone;
use serde_json::{Value, json};

use super::alertmanager::Fnv1a64;
use super::*;
use crate::rules::Severity;
use crate::webhook::model::AlertState;
use crate::webhook::model::tests::orange;

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
        serde_json::from_str(r#"["json","alertmanager","dingtalk","wecom","ding_talk"]"#).unwrap();
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
    let fp =
        |e: &AlertEvent| value(Format::Alertmanager, e, &zh())["alerts"][0]["fingerprint"].clone();
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

/// The ticketing format against its published schema: every required key, every enumerated value.
#[test]
fn ticketing_payloads_follow_their_schema() {
    let schema: Value = serde_json::from_str(include_str!(
        "../../../docs/schemas/ticketing-admission.schema.json"
    ))
    .unwrap();
    let check = |v: &Value| {
        for key in schema["required"].as_array().unwrap() {
            assert!(
                v.get(key.as_str().unwrap()).is_some(),
                "{key} missing in {v}"
            );
        }
        let props = schema["properties"].as_object().unwrap();
        for (k, p) in props {
            if let Some(allowed) = p["enum"].as_array() {
                assert!(allowed.contains(&v[k]), "{k} = {} not in {allowed:?}", v[k]);
            }
            if let Some(allowed) = p["items"]["enum"].as_array() {
                for item in v[k].as_array().unwrap() {
                    assert!(allowed.contains(item), "{k}: {item} not in {allowed:?}");
                }
            }
        }
        assert_eq!(v["version"], schema["properties"]["version"]["const"]);
    };
    let mut paused = orange();
    paused.kind = "admission".into();
    paused.alert_id = "tianshan-canyon/admission".into();
    paused.admission = Some(crate::admission::Signal {
        state: crate::admission::Sales::Paused,
        reasons: vec!["instant_level.red".into(), "sold_out".into()],
        remaining_today: Some(0),
        oversold: vec!["08:00-10:00".into()],
    });
    let v = value(Format::Ticketing, &paused, &zh());
    check(&v);
    assert_eq!(
        (v["event"].as_str(), v["sales"].as_str()),
        (Some("admission"), Some("paused"))
    );
    assert_eq!(v["oversold_slots"], json!(["08:00-10:00"]));
    assert_eq!(v["area"]["id"], "tianshan-canyon");
    // Any other kind subscribed arrives as a notice, still within the schema.
    let v = value(Format::Ticketing, &orange(), &zh());
    check(&v);
    assert_eq!(
        (v["event"].as_str(), v["sales"].clone()),
        (Some("notice"), Value::Null)
    );
}
