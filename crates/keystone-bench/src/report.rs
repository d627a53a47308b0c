//! Results: samples per engine, medians with min–max, ratios against baselines, targets.

use std::fmt::Write;

/// What a row promises about Keystone.
#[derive(Debug, Clone)]
pub enum Target {
    /// Keystone over the baseline (`Row::ratios`) is at least `min`.
    Ratio { baseline: &'static str, min: f64 },
    /// Keystone's median is at most this.
    AtMost(f64),
}

/// One measured quantity, with every sample of every engine.
#[derive(Debug, Clone)]
pub struct Row {
    pub workload: String,
    pub metric: String,
    pub samples: Vec<(String, Vec<f64>)>,
    pub targets: Vec<Target>,
}

impl Row {
    pub fn new(workload: impl Into<String>, metric: impl Into<String>, samples: Vec<(String, Vec<f64>)>) -> Self {
        Row { workload: workload.into(), metric: metric.into(), samples, targets: Vec::new() }
    }

    #[must_use]
    pub fn target(mut self, t: Target) -> Self {
        self.targets.push(t);
        self
    }

    pub fn median(&self, engine: &str) -> Option<f64> {
        self.samples.iter().find(|(e, _)| e == engine).and_then(|(_, s)| median(s))
    }

    fn of(&self, engine: &str) -> Option<&[f64]> {
        self.samples.iter().find(|(e, _)| e == engine).map(|(_, s)| s.as_slice())
    }

    /// Keystone over `baseline`, one ratio per repetition: the runs of one repetition are
    /// alternated within the same minutes (`alternate`), so each pair met the same machine.
    /// Rows with unequal sample counts compare medians (one ratio).
    pub fn ratios(&self, baseline: &str) -> Vec<f64> {
        let (Some(k), Some(b)) = (self.of("keystone"), self.of(baseline)) else { return Vec::new() };
        if k.len() == b.len() {
            k.iter().zip(b).filter(|(_, b)| **b > 0.0).map(|(k, b)| k / b).collect()
        } else {
            match (median(k), median(b)) {
                (Some(k), Some(b)) if b > 0.0 => vec![k / b],
                _ => Vec::new(),
            }
        }
    }

    /// The median of `ratios`.
    pub fn ratio(&self, baseline: &str) -> Option<f64> {
        median(&self.ratios(baseline))
    }
}

pub fn median(samples: &[f64]) -> Option<f64> {
    let mut s: Vec<f64> = samples.to_vec();
    s.sort_by(f64::total_cmp);
    match s.len() {
        0 => None,
        n if n % 2 == 1 => Some(s[n / 2]),
        n => Some(f64::midpoint(s[n / 2 - 1], s[n / 2])),
    }
}

/// The `p`-th percentile (0–100) of `samples`, nearest rank.
#[allow(clippy::cast_sign_loss, reason = "p is clamped to 0–100, so the rank is not negative")]
pub fn percentile(samples: &mut [f64], p: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    samples.sort_by(f64::total_cmp);
    let rank = ((p.clamp(0.0, 100.0) / 100.0) * samples.len() as f64).ceil() as usize;
    samples[rank.clamp(1, samples.len()) - 1]
}

pub fn num(v: f64) -> String {
    let a = v.abs();
    if a >= 1000.0 {
        let s = format!("{v:.0}");
        // Thousands separators for readability.
        let (sign, digits) = s.strip_prefix('-').map_or(("", s.as_str()), |d| ("-", d));
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        format!("{sign}{out}")
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn cell(samples: &[f64]) -> String {
    let Some(m) = median(samples) else { return "—".into() };
    if samples.len() == 1 {
        return num(m);
    }
    let lo = samples.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = samples.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("{} ({}–{})", num(m), num(lo), num(hi))
}

/// Whether each target holds, as text ("0.9× redb: **yes**").
fn verdicts(row: &Row) -> (String, String) {
    let ks = row.median("keystone");
    let mut want = Vec::new();
    let mut met = Vec::new();
    for t in &row.targets {
        match t {
            Target::Ratio { baseline, min } => {
                want.push(format!("≥ {min}× {baseline}"));
                let ok = row.ratio(baseline).map(|r| r >= *min);
                met.push(verdict(ok));
            }
            Target::AtMost(max) => {
                want.push(format!("≤ {}", num(*max)));
                met.push(verdict(ks.map(|k| k <= *max)));
            }
        }
    }
    (want.join(", "), met.join(", "))
}

fn verdict(ok: Option<bool>) -> String {
    match ok {
        Some(true) => "yes".into(),
        Some(false) => "**NO**".into(),
        None => "n/a".into(),
    }
}

/// The whole table, in Markdown: medians (min–max) per engine, ratios Keystone/baseline
/// (median (min–max) of the repetitions' ratios).
pub fn table(rows: &[Row], engines: &[String]) -> String {
    let baselines: Vec<&String> = engines.iter().filter(|e| *e != "keystone").collect();
    let mut out = String::new();
    let _ = write!(out, "| Workload | Metric |");
    for e in engines {
        let _ = write!(out, " {e} |");
    }
    for b in &baselines {
        let _ = write!(out, " keystone/{b} |");
    }
    let _ = writeln!(out, " Target | Met |");
    let _ = write!(out, "|---|---|");
    for _ in engines.iter().chain(baselines.iter().copied()) {
        let _ = write!(out, "---|");
    }
    let _ = writeln!(out, "---|---|");
    for row in rows {
        let _ = write!(out, "| {} | {} |", row.workload, row.metric);
        for e in engines {
            let samples = row.samples.iter().find(|(n, _)| n == e).map_or(&[][..], |(_, s)| s.as_slice());
            let _ = write!(out, " {} |", cell(samples));
        }
        for b in &baselines {
            let ratios = row.ratios(b);
            let r = match median(&ratios) {
                None => "—".into(),
                Some(m) if ratios.len() == 1 => format!("{m:.2}×"),
                Some(m) => {
                    let lo = ratios.iter().copied().fold(f64::INFINITY, f64::min);
                    let hi = ratios.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    format!("{m:.2}× ({lo:.2}–{hi:.2})")
                }
            };
            let _ = write!(out, " {r} |");
        }
        let (want, met) = verdicts(row);
        let _ = writeln!(out, " {want} | {met} |");
    }
    out
}

/// One line on the targets: all met, some not met, or met only where a baseline was run.
pub fn summary(rows: &[Row]) -> &'static str {
    let met: Vec<String> = rows.iter().map(|r| verdicts(r).1).collect();
    if met.iter().any(|m| m.contains("NO")) {
        "NOT all met (see the Met column)"
    } else if met.iter().any(|m| m.contains("n/a")) {
        "not all checked: a baseline they compare with was not run (n/a in the Met column)"
    } else {
        "all met"
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn medians_and_percentiles() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
        let mut s: Vec<f64> = (1..=100).map(f64::from).collect();
        assert!((percentile(&mut s, 50.0) - 50.0).abs() < f64::EPSILON);
        assert!((percentile(&mut s, 99.0) - 99.0).abs() < f64::EPSILON);
    }

    #[test]
    fn targets_are_judged() {
        let row = Row::new("W", "ops/s", vec![("keystone".into(), vec![90.0]), ("redb".into(), vec![100.0])])
            .target(Target::Ratio { baseline: "redb", min: 0.9 });
        assert_eq!(summary(std::slice::from_ref(&row)), "all met");
        let unchecked = Row::new("W", "ops/s", vec![("keystone".into(), vec![90.0])])
            .target(Target::Ratio { baseline: "redb", min: 0.9 });
        assert!(summary(std::slice::from_ref(&unchecked)).starts_with("not all checked"));
        let row = row.target(Target::AtMost(10.0));
        assert!(summary(&[row.clone(), unchecked]).starts_with("NOT all met"));
        assert!(table(&[row], &["keystone".into(), "redb".into()]).contains("0.90×"));
        // Ratios pair the repetitions: the median of 2/1, 2/4, 9/3 is 2, where the medians'
        // ratio would be 2/3.
        let paired = Row::new(
            "W",
            "ops/s",
            vec![("keystone".into(), vec![2.0, 2.0, 9.0]), ("redb".into(), vec![1.0, 4.0, 3.0])],
        );
        assert_eq!(paired.ratios("redb"), [2.0, 0.5, 3.0]);
        assert_eq!(paired.ratio("redb"), Some(2.0));
        assert!(table(&[paired], &["keystone".into(), "redb".into()]).contains("2.00× (0.50–3.00)"));
        assert_eq!(num(1_234_567.0), "1,234,567");
    }
}
