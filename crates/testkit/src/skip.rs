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
