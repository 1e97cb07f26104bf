//! Program names become file names and log prefixes.

/// Whether `name` can name a program: letters, digits, `_`, `.` and `-`, and not `.` or `..`.
pub(crate) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_safe_file_names() {
        for good in ["api", "task-rpc", "db_1", "v1.2", "A"] {
            assert!(valid_name(good), "{good}");
        }
        for bad in ["", ".", "..", "a b", "a/b", "ä", "x:y"] {
            assert!(!valid_name(bad), "{bad}");
        }
    }
}
