//! The samples of a run: figure → implementation → (round, value), and what each round saw.

use std::collections::BTreeMap;

use super::imp::Pin;
use crate::workload::Workload;

/// Samples: figure → implementation → (round, value).
#[derive(Debug, Default, serde::Serialize)]
pub struct Store {
    pub values: BTreeMap<String, BTreeMap<String, Vec<(usize, f64)>>>,
    pub failures: Vec<String>,
    /// Per round: load average at start and end, and the median CPU that other processes used
    /// during the RPC windows of that round.
    pub rounds: Vec<RoundInfo>,
    pub notes: Vec<String>,
}

#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct RoundInfo {
    pub load_start: [f64; 3],
    pub load_end: [f64; 3],
    pub others_cpus: Vec<f64>,
    pub seconds: f64,
}

impl Store {
    pub fn put(&mut self, figure: &str, imp: &str, round: usize, value: f64) {
        self.values.entry(figure.to_owned()).or_default().entry(imp.to_owned()).or_default().push((round, value));
    }

    pub fn get(&self, figure: &str, imp: &str) -> Vec<f64> {
        self.values
            .get(figure)
            .and_then(|m| m.get(imp))
            .map(|v| v.iter().map(|(_, x)| *x).collect())
            .unwrap_or_default()
    }

    /// `a / b` for each round in which both were measured.
    pub fn ratio(&self, figure: &str, a: &str, b: &str) -> Vec<f64> {
        self.ratio_of(figure, a, figure, b)
    }

    pub fn ratio_of(&self, fa: &str, a: &str, fb: &str, b: &str) -> Vec<f64> {
        let (Some(xs), Some(ys)) =
            (self.values.get(fa).and_then(|m| m.get(a)), self.values.get(fb).and_then(|m| m.get(b)))
        else {
            return Vec::new();
        };
        xs.iter()
            .filter_map(|(round, x)| ys.iter().find(|(r, _)| r == round).map(|(_, y)| x / y))
            .filter(|r| r.is_finite())
            .collect()
    }
}

pub fn m1_key(workload: Workload, callers: usize, metric: &str) -> String {
    format!("m1/{}/c{callers}/{metric}", workload.name())
}

pub fn m3_key(pin: Pin, metric: &str) -> String {
    format!("m3/{}/{metric}", if pin == Pin::Same { "same" } else { "split" })
}
