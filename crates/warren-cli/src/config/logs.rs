//! The keys about log files: `logs_dir` (top level), `max_size` and `keep` (`[defaults]` or a
//! program), and what they resolve to.

/// When one program's log file is rotated, and how many rotated files are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LogLimits {
    /// The size past which `<program>.log` is rotated (bytes).
    pub max_size: u64,
    /// How many rotated files (`.log.1` …) are kept besides the current one.
    pub keep: u32,
}

impl Default for LogLimits {
    /// 10 MiB × (5 + 1) files: at most 60 MiB per program.
    fn default() -> LogLimits {
        LogLimits { max_size: 10 * 1024 * 1024, keep: 5 }
    }
}

/// A size as written: a whole number with an optional unit, `B`, `KiB`, `MiB`, `GiB` (or `K`,
/// `M`, `G`, the same powers of 1024) or `kB`, `MB`, `GB` (powers of 1000).
pub(crate) fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let digits = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let number: u64 = number.parse().map_err(|_| "expected a number such as 10MiB".to_owned())?;
    let factor: u64 = match unit.trim() {
        "" | "B" => 1,
        "K" | "KiB" => 1 << 10,
        "M" | "MiB" => 1 << 20,
        "G" | "GiB" => 1 << 30,
        "kB" | "KB" => 1000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        other => return Err(format!("unknown unit {other:?} (expected B, KiB, MiB, GiB, kB, MB or GB)")),
    };
    let size = number.checked_mul(factor).ok_or_else(|| "too large".to_owned())?;
    if size < 1024 { Err("must be at least 1KiB".to_owned()) } else { Ok(size) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_and_decimal_units() {
        assert_eq!(parse_size("10MiB"), Ok(10 << 20));
        assert_eq!(parse_size("64 KiB"), Ok(64 << 10));
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        assert_eq!(parse_size("5MB"), Ok(5_000_000));
        assert_eq!(parse_size("4096"), Ok(4096));
        for bad in ["", "MiB", "10 parsecs", "12", "-5MiB"] {
            assert!(parse_size(bad).is_err(), "{bad:?}");
        }
    }
}
