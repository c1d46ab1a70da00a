//! Levels, severities, ladders (thresholds and action texts) and [`Held`], the hysteresis machine
//! that decides which level a load is shown at.

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

/// A warning level of a load (occupancy or today's entries over the effective capacity).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    #[default]
    Normal,
    /// Prepare.
    Blue,
    /// Traffic and entrance control (LB/T 034, at 80% of the maximum).
    Yellow,
    /// Public notice and report to the local government (Tourism Law art. 45).
    Orange,
    /// At the maximum: stop ticket sales.
    Red,
}

impl Level {
    pub const ALL: [Level; 5] = [
        Level::Normal,
        Level::Blue,
        Level::Yellow,
        Level::Orange,
        Level::Red,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Normal => "normal",
            Level::Blue => "blue",
            Level::Yellow => "yellow",
            Level::Orange => "orange",
            Level::Red => "red",
        }
    }

    pub fn name_zh(self) -> &'static str {
        match self {
            Level::Normal => "正常",
            Level::Blue => "蓝色",
            Level::Yellow => "黄色",
            Level::Orange => "橙色",
            Level::Red => "红色",
        }
    }

    /// The severity an alert at this level carries.
    pub fn severity(self) -> Severity {
        match self {
            Level::Normal => Severity::Info,
            Level::Blue | Level::Yellow => Severity::Warning,
            Level::Orange => Severity::Major,
            Level::Red => Severity::Critical,
        }
    }

    fn below(self) -> Option<Level> {
        match self {
            Level::Normal => None,
            Level::Blue => Some(Level::Normal),
            Level::Yellow => Some(Level::Blue),
            Level::Orange => Some(Level::Yellow),
            Level::Red => Some(Level::Orange),
        }
    }
}

/// How urgent an alert is; what a receiver routes on.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    #[default]
    Info,
    /// Blue and yellow levels, a silent device, an early warning of orange.
    Warning,
    /// Orange, a space whose level is unknown, an early warning of red.
    Major,
    /// Red.
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Major => "major",
            Severity::Critical => "critical",
        }
    }
}

/// What to do at a level, in both languages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Action {
    pub zh: String,
    pub en: String,
}

impl Action {
    fn new(zh: &str, en: &str) -> Self {
        Self {
            zh: zh.into(),
            en: en.into(),
        }
    }
}

/// The action text of every level.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LevelActions {
    pub normal: Action,
    pub blue: Action,
    pub yellow: Action,
    pub orange: Action,
    pub red: Action,
}

impl LevelActions {
    pub fn get(&self, level: Level) -> &Action {
        match level {
            Level::Normal => &self.normal,
            Level::Blue => &self.blue,
            Level::Yellow => &self.yellow,
            Level::Orange => &self.orange,
            Level::Red => &self.red,
        }
    }

    fn get_mut(&mut self, level: Level) -> &mut Action {
        match level {
            Level::Normal => &mut self.normal,
            Level::Blue => &mut self.blue,
            Level::Yellow => &mut self.yellow,
            Level::Orange => &mut self.orange,
            Level::Red => &mut self.red,
        }
    }
}

impl Default for LevelActions {
    fn default() -> Self {
        Self {
            normal: Action::new("正常接待，常规监测", "Normal operation, routine monitoring"),
            blue: Action::new(
                "做好限流准备：增派入口人员，预告可能限流",
                "Prepare: extra staff at the entrances, announce that flow control may start",
            ),
            yellow: Action::new(
                "启动交通管制和入口管控（LB/T 034）",
                "Start traffic and entrance control (LB/T 034)",
            ),
            orange: Action::new(
                "发布公告并向当地政府报告（《旅游法》第四十五条）",
                "Public notice and report to the local government (Tourism Law art. 45)",
            ),
            red: Action::new("立即停止售票", "Stop ticket sales now"),
        }
    }
}

/// A resolved ladder: the load (percent of the effective capacity) at which each level starts,
/// and each level's action. Thresholds are non-decreasing; two equal thresholds leave the lower
/// level an empty band that is never shown (a local ladder without blue sets `blue = yellow`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ladder {
    /// Which ladder this is: a [`Preset`]'s name, or `local` when a county or area set its own
    /// thresholds. Shown in the API, the pages and the webhooks.
    #[serde(default = "lbt034")]
    pub name: String,
    pub blue_pct: f64,
    pub yellow_pct: f64,
    pub orange_pct: f64,
    pub red_pct: f64,
    pub actions: LevelActions,
}

impl Default for Ladder {
    /// LB/T 034-2014 and Tourism Law art. 45 as practised: 60 / 80 / 90 / 100 %.
    fn default() -> Self {
        Ladder::preset(Preset::Lbt034)
    }
}

fn lbt034() -> String {
    Preset::Lbt034.as_str().to_owned()
}

/// The shipped ladders, chosen county-wide (`[rules.ladder] preset`) or per area.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Preset {
    /// LB/T 034-2014 with Tourism Law art. 45 as practised: blue 60, yellow 80, orange 90,
    /// red 100 % (at the approved maximum ticket sales stop).
    Lbt034,
    /// LB/T 068-2017: yellow 80, orange 90, red 95 % of the maximum; no blue band.
    Lbt068,
}

impl Preset {
    pub fn as_str(self) -> &'static str {
        match self {
            Preset::Lbt034 => "lbt034",
            Preset::Lbt068 => "lbt068",
        }
    }
}

impl Ladder {
    /// A shipped ladder with the default actions.
    pub fn preset(p: Preset) -> Self {
        let (blue, yellow, orange, red) = match p {
            Preset::Lbt034 => (60.0, 80.0, 90.0, 100.0),
            // No blue: an empty band below yellow is never shown.
            Preset::Lbt068 => (80.0, 80.0, 90.0, 95.0),
        };
        Self {
            name: p.as_str().to_owned(),
            blue_pct: blue,
            yellow_pct: yellow,
            orange_pct: orange,
            red_pct: red,
            actions: LevelActions::default(),
        }
    }
}

/// A partial ladder in configuration: keys left out keep the value of the ladder below it (the
/// county's for a space, the LB/T 034 default for the county).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LadderConfig {
    /// Start from a shipped ladder (`lbt034`, `lbt068`) instead of the one below.
    pub preset: Option<Preset>,
    pub blue_pct: Option<f64>,
    pub yellow_pct: Option<f64>,
    pub orange_pct: Option<f64>,
    pub red_pct: Option<f64>,
    pub actions: ActionsConfig,
}

/// Per-level action overrides.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ActionsConfig {
    pub normal: Option<Action>,
    pub blue: Option<Action>,
    pub yellow: Option<Action>,
    pub orange: Option<Action>,
    pub red: Option<Action>,
}

impl LadderConfig {
    /// This override applied on top of `base`.
    pub fn apply(&self, base: &Ladder) -> Ladder {
        let mut out = match self.preset {
            Some(p) => Ladder {
                actions: base.actions.clone(),
                ..Ladder::preset(p)
            },
            None => base.clone(),
        };
        if [
            self.blue_pct,
            self.yellow_pct,
            self.orange_pct,
            self.red_pct,
        ]
        .iter()
        .any(Option::is_some)
        {
            out.name = "local".to_owned();
        }
        for (dst, src) in [
            (&mut out.blue_pct, self.blue_pct),
            (&mut out.yellow_pct, self.yellow_pct),
            (&mut out.orange_pct, self.orange_pct),
            (&mut out.red_pct, self.red_pct),
        ] {
            if let Some(v) = src {
                *dst = v;
            }
        }
        let a = &self.actions;
        for (level, src) in [
            (Level::Normal, &a.normal),
            (Level::Blue, &a.blue),
            (Level::Yellow, &a.yellow),
            (Level::Orange, &a.orange),
            (Level::Red, &a.red),
        ] {
            if let Some(action) = src {
                *out.actions.get_mut(level) = action.clone();
            }
        }
        out
    }
}

impl Ladder {
    /// Load (percent) at which `level` starts; `None` for normal.
    pub fn threshold(&self, level: Level) -> Option<f64> {
        match level {
            Level::Normal => None,
            Level::Blue => Some(self.blue_pct),
            Level::Yellow => Some(self.yellow_pct),
            Level::Orange => Some(self.orange_pct),
            Level::Red => Some(self.red_pct),
        }
    }

    /// The level a load is in without hysteresis: the highest whose threshold it reaches.
    pub fn level_for(&self, load_pct: f64) -> Level {
        Level::ALL
            .into_iter()
            .rev()
            .find(|&l| self.threshold(l).is_none_or(|t| load_pct >= t))
            .unwrap_or(Level::Normal)
    }

    /// The next level down from `from` that can actually be held (empty bands are skipped).
    pub fn step_down(&self, from: Level) -> Level {
        let Some(top) = self.threshold(from) else {
            return Level::Normal;
        };
        let mut l = from;
        while let Some(next) = l.below() {
            l = next;
            if self.threshold(l).is_none_or(|t| t < top) {
                return l;
            }
        }
        Level::Normal
    }

    pub fn action(&self, level: Level) -> &Action {
        self.actions.get(level)
    }

    /// Problems that would make the ladder meaningless.
    pub(crate) fn problems(&self) -> Vec<String> {
        let t = [
            ("blue_pct", self.blue_pct),
            ("yellow_pct", self.yellow_pct),
            ("orange_pct", self.orange_pct),
            ("red_pct", self.red_pct),
        ];
        let mut out = Vec::new();
        for (name, v) in t {
            if !(v.is_finite() && v > 0.0 && v <= 1000.0) {
                out.push(format!("{name} = {v} must be a percentage in (0, 1000]"));
            }
        }
        for w in t.windows(2) {
            if w[0].1 > w[1].1 {
                out.push(format!(
                    "{} = {} is above {} = {} (thresholds must not decrease)",
                    w[0].0, w[0].1, w[1].0, w[1].1
                ));
            }
        }
        out
    }
}

/// The level held for one load (instantaneous or daily), with hysteresis and dwell.
///
/// Up: the level rises as soon as the load reaches a higher threshold, straight to the highest
/// one reached. Down: only once the load has stayed below the held level's threshold minus the
/// margin for the dwell time, and then by one (non-empty) level; each further step needs its own
/// dwell. A load hovering around a threshold therefore enters once and stays.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Held {
    pub level: Level,
    /// Since when the load has been below the exit point of `level` (the dwell timer).
    pub below_since: Option<DateTime<Utc>>,
}

impl Held {
    pub fn update(
        &mut self,
        load_pct: f64,
        now: DateTime<Utc>,
        ladder: &Ladder,
        margin_pct: f64,
        dwell: TimeDelta,
    ) {
        let raw = ladder.level_for(load_pct);
        if raw > self.level {
            self.level = raw;
            self.below_since = None;
            return;
        }
        let Some(t) = ladder.threshold(self.level) else {
            self.below_since = None;
            return;
        };
        if load_pct >= t - margin_pct {
            self.below_since = None;
            return;
        }
        let since = *self.below_since.get_or_insert(now);
        if now - since >= dwell {
            self.level = ladder.step_down(self.level);
            self.below_since = ladder
                .threshold(self.level)
                .filter(|t| load_pct < t - margin_pct)
                .map(|_| now);
        }
    }

    /// No valid reading: keep the level, but the dwell must start again from fresh evidence.
    pub fn hold(&mut self) {
        self.below_since = None;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn presets_are_named_and_an_own_threshold_makes_a_local_ladder() {
        let lbt068: LadderConfig = toml::from_str("preset = \"lbt068\"").unwrap();
        let l = lbt068.apply(&Ladder::default());
        assert_eq!(l.name, "lbt068");
        // LB/T 068-2017: red at 95 % of the maximum, and no blue band.
        assert_eq!(l.level_for(95.0), Level::Red);
        assert_eq!(l.level_for(94.9), Level::Orange);
        assert_eq!(l.level_for(79.0), Level::Normal);
        assert_eq!(l.step_down(Level::Yellow), Level::Normal);
        assert_eq!(Ladder::default().name, "lbt034");
        assert_eq!(Ladder::default().level_for(95.0), Level::Orange);
        let own: LadderConfig = toml::from_str("preset = \"lbt068\"\nred_pct = 98").unwrap();
        let l = own.apply(&Ladder::default());
        assert_eq!(
            (l.name.as_str(), l.red_pct, l.orange_pct),
            ("local", 98.0, 90.0)
        );
        assert!(toml::from_str::<LadderConfig>("preset = \"lbt999\"").is_err());
    }

    use super::*;

    #[test]
    fn level_for_uses_the_highest_threshold_reached() {
        let l = Ladder::default();
        assert_eq!(l.level_for(0.0), Level::Normal);
        assert_eq!(l.level_for(59.99), Level::Normal);
        assert_eq!(l.level_for(60.0), Level::Blue);
        assert_eq!(l.level_for(80.0), Level::Yellow);
        assert_eq!(l.level_for(95.0), Level::Orange);
        assert_eq!(l.level_for(100.0), Level::Red);
        assert_eq!(l.level_for(250.0), Level::Red);
    }

    #[test]
    fn empty_bands_are_skipped_both_ways() {
        // 八达岭-style: yellow at 60, orange at 80, no separate blue.
        let l = LadderConfig {
            blue_pct: Some(60.0),
            yellow_pct: Some(60.0),
            orange_pct: Some(80.0),
            ..Default::default()
        }
        .apply(&Ladder::default());
        assert!(l.problems().is_empty());
        assert_eq!(l.level_for(65.0), Level::Yellow);
        assert_eq!(l.step_down(Level::Yellow), Level::Normal);
        assert_eq!(l.step_down(Level::Orange), Level::Yellow);
    }

    #[test]
    fn overrides_merge_field_by_field() {
        let l = LadderConfig {
            red_pct: Some(95.0),
            actions: ActionsConfig {
                red: Some(Action::new("停售", "Stop")),
                ..Default::default()
            },
            ..Default::default()
        }
        .apply(&Ladder::default());
        assert_eq!((l.orange_pct, l.red_pct), (90.0, 95.0));
        assert_eq!(l.action(Level::Red).en, "Stop");
        assert_eq!(
            l.action(Level::Orange),
            Ladder::default().action(Level::Orange)
        );
    }

    #[test]
    fn bad_ladders_are_reported() {
        let l = Ladder {
            orange_pct: 70.0,
            red_pct: f64::NAN,
            ..Default::default()
        };
        let p = l.problems();
        assert_eq!(p.len(), 2, "{p:?}");
    }
}
