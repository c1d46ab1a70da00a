//! Medians, percentiles and the results table.

use std::fmt::Write as _;

pub fn median(xs: &[f64]) -> f64 {
    percentile(xs, 0.5)
}

/// Nearest-rank percentile (`q` in 0..=1); NaN for no samples.
pub fn percentile(xs: &[f64], q: f64) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

/// One printed figure: the per-run samples, the median shown, and a target if it has one.
pub struct Figure {
    pub group: String,
    pub name: String,
    pub unit: &'static str,
    pub samples: Vec<f64>,
    pub target: Option<Target>,
}

#[derive(Clone, Copy)]
pub enum Target {
    AtLeast(f64),
    AtMost(f64),
}

impl Figure {
    pub fn value(&self) -> f64 {
        median(&self.samples)
    }

    pub fn verdict(&self) -> &'static str {
        let v = self.value();
        match self.target {
            None => "",
            Some(Target::AtLeast(t)) if v >= t => "met",
            Some(Target::AtMost(t)) if v <= t => "met",
            Some(_) => "MISSED",
        }
    }
}

pub fn fmt_num(v: f64) -> String {
    if !v.is_finite() {
        return "n/a".into();
    }
    let a = v.abs();
    if a >= 10_000.0 {
        let mut s = format!("{:.0}", v);
        // thousands separators
        let neg = s.starts_with('-');
        let digits: Vec<char> = s.trim_start_matches('-').chars().collect();
        let mut out = String::new();
        for (i, c) in digits.iter().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(*c);
        }
        s = if neg { format!("-{out}") } else { out };
        s
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

/// A Markdown table of every figure: median, min–max over runs, target and verdict.
pub fn table(figures: &[Figure]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| group | figure | median | min – max | runs | target | |\n|---|---|---|---|---|---|---|"
    );
    for f in figures {
        let (lo, hi) = (percentile(&f.samples, 0.0), percentile(&f.samples, 1.0));
        let target = match f.target {
            None => String::new(),
            Some(Target::AtLeast(t)) => format!("≥ {}", fmt_num(t)),
            Some(Target::AtMost(t)) => format!("≤ {}", fmt_num(t)),
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} {} | {} – {} | {} | {} | {} |",
            f.group,
            f.name,
            fmt_num(f.value()),
            f.unit,
            fmt_num(lo),
            fmt_num(hi),
            f.samples.len(),
            target,
            f.verdict()
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_percentiles() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0], 0.99), 4.0);
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0], 0.0), 1.0);
        assert_eq!(fmt_num(1_234_567.0), "1,234,567");
    }
}
