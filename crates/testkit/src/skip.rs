//! A test that cannot run on this machine says so, and fails where it must run.
//!
//! Some tests need what a developer's machine may lack (a writable cgroup2 hierarchy, root).
//! Passing silently there would hide that CI never ran them; so on CI (`CI=true`, as CI services
//! set it) a missing requirement is a failure.

/// Reports that the calling test cannot run here because of `reason`: prints it and returns, so
/// that the test can return (skip); panics instead when the environment variable `CI` is `true`.
///
/// ```no_run
/// # let have_cgroups = false;
/// if !have_cgroups {
///     return testkit::unavailable("no writable cgroup2 hierarchy");
/// }
/// ```
#[track_caller]
pub fn unavailable(reason: &str) {
    if std::env::var("CI").is_ok_and(|ci| ci.eq_ignore_ascii_case("true")) {
        panic!("this test cannot run here ({reason}), and CI=true requires it to run");
    }
    eprintln!("skipped: {reason} (with CI=true this fails)");
}

/// Like [`unavailable`], for a requirement the CI machine is known to lack: `.ci/run` lists such
/// gaps it has detected in `WARREN_TEST_KNOWN_MISSING` (comma-separated names, printed in its log),
/// and a test whose `missing` is among them is skipped with its reason even under `CI=true`.
/// Anything missing that `.ci/run` did not announce still fails there.
#[track_caller]
pub fn unavailable_known(missing: &str, reason: &str) {
    let known = std::env::var("WARREN_TEST_KNOWN_MISSING").unwrap_or_default();
    if known.split(',').any(|name| name.trim() == missing) {
        eprintln!("skipped: {reason} ({missing} is missing on this machine, as .ci/run announced)");
        return;
    }
    unavailable(reason);
}
