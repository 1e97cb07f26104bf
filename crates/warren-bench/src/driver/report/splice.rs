//! Where the generated text goes in `BENCHMARKS.md`: between two markers, replaced in place.

use std::path::Path;

pub const BEGIN: &str = "<!-- bench/run-all: generated from here to the end marker; rerun it rather than edit -->";
pub const END: &str = "<!-- bench/run-all: end of generated text -->";
pub const HEADING: &str = "## Cross-implementation benchmarks (bench/run-all)";
const CRITERION_HEADING: &str = "## In-process criterion benchmarks (cargo bench)";

/// Puts `generated` between the markers in `path`, adding the section (after the title) the
/// first time; a file that does not exist yet gets a title of its own.
pub fn splice_into(path: &Path, generated: &str) -> std::io::Result<()> {
    let block = format!("{BEGIN}\n\n{}\n{END}", generated.trim_end());
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let new = match (text.find(BEGIN), text.find(END)) {
        (Some(begin), Some(end)) if begin < end => format!("{}{block}{}", &text[..begin], &text[end + END.len()..]),
        _ if text.is_empty() => format!("# Benchmarks\n\n{HEADING}\n\n{block}\n"),
        _ => {
            let (title, rest) = text.split_once('\n').unwrap_or((&text, ""));
            format!("{title}\n\n{HEADING}\n\n{block}\n\n{CRITERION_HEADING}\n{rest}")
        }
    };
    std::fs::write(path, new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_section_is_added_once_then_replaced_in_place() {
        let dir = std::env::temp_dir().join(format!("wb-report-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("BENCHMARKS.md");
        std::fs::write(&path, "# Benchmarks\n\nOld intro.\n\n## Old section\n").expect("write");
        splice_into(&path, "first").expect("splice");
        splice_into(&path, "second").expect("splice");
        let text = std::fs::read_to_string(&path).expect("read");
        let _ = std::fs::remove_dir_all(&dir);
        assert!(text.starts_with("# Benchmarks\n\n## Cross-implementation"), "{text}");
        assert!(text.contains("second") && !text.contains("first"), "{text}");
        assert_eq!(text.matches(BEGIN).count(), 1);
        assert!(text.contains("Old intro.") && text.contains("## Old section"));
        assert!(text.find(END) < text.find("Old intro."));
    }
}
