//! The benchmark driver; run it through `bench/run-all`, which builds everything first.
//!
//! `wb-run [--quick] [--rounds N] [--window-ms MS] [--warmup-ms MS] [--spawns N] [--log-lines N]
//! [--bin DIR] [--go DIR] [--supervisord PATH] [--out FILE] [--json FILE] [--only m1,m3,m4,m5,m6]`

use std::process::ExitCode;

fn main() -> ExitCode {
    let config = match warren_bench::driver::Config::parse(std::env::args().skip(1)) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("wb-run: {err:#}");
            return ExitCode::from(2);
        }
    };
    match warren_bench::driver::run(&config) {
        Ok(0) => ExitCode::SUCCESS,
        Ok(failures) => {
            eprintln!("wb-run: {failures} measurement(s) failed; see the report");
            ExitCode::FAILURE
        }
        Err(err) => {
            eprintln!("wb-run: {err:#}");
            ExitCode::FAILURE
        }
    }
}
