//! How a figure is written: median and spread, thousands separators, ratios.

/// Median, min and max.
pub(super) fn stats(xs: &[f64]) -> Option<(f64, f64, f64)> {
    let mut xs: Vec<f64> = xs.iter().copied().filter(|x| x.is_finite()).collect();
    if xs.is_empty() {
        return None;
    }
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    let median = if n % 2 == 1 { xs[n / 2] } else { (xs[n / 2 - 1] + xs[n / 2]) / 2.0 };
    Some((median, xs[0], xs[n - 1]))
}

pub(super) fn num(x: f64, decimals: usize) -> String {
    if x.abs() >= 10_000.0 {
        // Thousands separators for large counts.
        let s = format!("{:.0}", x.round());
        let (sign, digits) = s.strip_prefix('-').map_or(("", s.as_str()), |d| ("-", d));
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        format!("{sign}{out}")
    } else {
        format!("{x:.decimals$}")
    }
}

/// `median [min–max]`, or `—` with no sample.
pub(super) fn cell(xs: &[f64], decimals: usize) -> String {
    match stats(xs) {
        None => "—".to_owned(),
        Some((m, lo, hi)) if xs.len() == 1 || (lo - hi).abs() < f64::EPSILON => num(m, decimals),
        Some((m, lo, hi)) => format!("{} [{}–{}]", num(m, decimals), num(lo, decimals), num(hi, decimals)),
    }
}

pub(super) fn ratio_cell(xs: &[f64]) -> String {
    match stats(xs) {
        None => "—".to_owned(),
        Some((m, _, _)) if xs.len() == 1 => format!("{m:.2}×"),
        Some((m, lo, hi)) => format!("{m:.2}× [{lo:.2}–{hi:.2}]"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_spreads_and_numbers() {
        assert_eq!(stats(&[3.0, 1.0, 2.0]), Some((2.0, 1.0, 3.0)));
        assert_eq!(stats(&[1.0, 2.0]), Some((1.5, 1.0, 2.0)));
        assert_eq!(stats(&[f64::NAN]), None);
        assert_eq!(num(1_234_567.4, 0), "1,234,567");
        assert_eq!(cell(&[1.0, 2.0, 3.0], 1), "2.0 [1.0–3.0]");
        assert_eq!(ratio_cell(&[0.5]), "0.50×");
    }
}
