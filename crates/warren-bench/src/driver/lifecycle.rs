//! M4 and M6: spawning, readiness and stopping of children, one at a time and many at once.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use serde_json::Value;

use super::process::KillOnDrop;
use super::runner::{Runner, quantile_ms};
use super::supervisor::{Program, Supervisord};
use crate::proc;
use crate::workload::{GET_ID, Todo};

impl Runner<'_> {
    pub(super) fn m4(&mut self, round: usize) {
        let spawns = self.config.spawns.to_string();
        let kinds = ["warren", "raw", "plain-wb-child"];
        for k in 0..kinds.len() {
            let kind = kinds[(k + round) % kinds.len()];
            let args: Vec<String> = match kind {
                "warren" => vec!["lifecycle".into(), self.child(), spawns.clone()],
                "raw" => {
                    vec!["plain".into(), self.config.bin.join("wb-raw-server").display().to_string(), spawns.clone()]
                }
                _ => vec![
                    "plain".into(),
                    self.child(),
                    spawns.clone(),
                    "--warren".into(),
                    "serve".into(),
                    "--current-thread".into(),
                ],
            };
            match self.host(&args) {
                Ok(v) => {
                    let ms = |name: &str, p: f64| quantile_ms(&v[name], p);
                    let s = &mut self.store;
                    for (name, key) in
                        [("first_reply_ns", "m4/first_reply"), ("stop_ns", "m4/stop"), ("ready_ns", "m4/ready")]
                    {
                        if let (Some(p50), Some(p90)) = (ms(name, 0.5), ms(name, 0.9)) {
                            s.put(&format!("{key}_p50_ms"), kind, round, p50);
                            s.put(&format!("{key}_p90_ms"), kind, round, p90);
                        }
                    }
                    let unclean = v["unclean"].as_f64().unwrap_or(f64::NAN);
                    s.put("m4/unclean", kind, round, unclean);
                    if unclean != 0.0 {
                        s.failures.push(format!(
                            "round {round} M4 {kind}: {unclean} stops not clean (exit code, process or socket left)"
                        ));
                    }
                    if let Some(rss) = v["child_rss_kib"].as_array().and_then(|a| a.first()).and_then(Value::as_f64) {
                        s.put("m6/child_rss_mb", "warren", round, rss * 1.024 / 1000.0);
                    }
                    eprintln!(
                        "wb-run: r{round} M4 {kind}: first reply p50 {:.2} ms",
                        ms("first_reply_ns", 0.5).unwrap_or(0.0)
                    );
                }
                Err(err) => self.fail(format!("round {round} M4 {kind}"), &err),
            }
        }
    }

    pub(super) fn many_plain(&mut self, round: usize, n: usize) {
        match self.host(&["plain-many".into(), self.child(), n.to_string()]) {
            Ok(v) => {
                let s = &mut self.store;
                let ms = |name: &str| v[name].as_f64().unwrap_or(f64::NAN) / 1e6;
                s.put(&format!("m4x{n}/all_ready_ms"), "plain", round, ms("all_ready_ns"));
                s.put(&format!("m4x{n}/all_replied_ms"), "plain", round, ms("all_replied_ns"));
                s.put(&format!("m4x{n}/all_stopped_ms"), "plain", round, ms("all_stopped_ns"));
                eprintln!(
                    "wb-run: r{round} M4x{n} plain: replied {:.1} ms, stopped {:.1} ms",
                    ms("all_replied_ns"),
                    ms("all_stopped_ns")
                );
            }
            Err(err) => self.fail(format!("round {round} M4x{n} plain"), &err),
        }
    }

    pub(super) fn many_warren(&mut self, round: usize, n: usize) {
        match self.host(&["many".into(), self.child(), n.to_string()]) {
            Ok(v) => {
                let s = &mut self.store;
                let ms = |name: &str| v[name].as_f64().unwrap_or(f64::NAN) / 1e6;
                s.put(&format!("m4x{n}/all_ready_ms"), "warren", round, ms("all_ready_ns"));
                s.put(&format!("m4x{n}/all_replied_ms"), "warren", round, ms("all_replied_ns"));
                s.put(&format!("m4x{n}/all_stopped_ms"), "warren", round, ms("all_stopped_ns"));
                let clean = v["all_gone"].as_bool() == Some(true) && v["unclean"].as_u64() == Some(0);
                s.put(&format!("m4x{n}/clean"), "warren", round, f64::from(u8::from(clean)));
                if !clean {
                    s.failures
                        .push(format!("round {round} M4x{n} warren: a child did not stop cleanly or left a socket"));
                }
                let mb = |name: &str| v[name].as_f64().unwrap_or(f64::NAN) * 1.024 / 1000.0;
                s.put(&format!("m6/host_rss_{n}_mb"), "warren", round, mb("host_rss_kib"));
                s.put(&format!("m6/watchdog_rss_{n}_mb"), "warren", round, mb("watchdog_rss_kib"));
                s.put(&format!("m6/child_rss_{n}_mb"), "warren", round, mb("child_rss_kib_median"));
                s.put(&format!("m6/child_pss_{n}_mb"), "warren", round, mb("child_pss_kib_median"));
                s.put(&format!("m6/child_private_{n}_mb"), "warren", round, mb("child_private_kib_median"));
                s.put(&format!("m6/host_pss_{n}_mb"), "warren", round, mb("host_pss_kib"));
                s.put(&format!("m6/host_private_{n}_mb"), "warren", round, mb("host_private_kib"));
                eprintln!(
                    "wb-run: r{round} M4x{n} warren: ready {:.1} ms, stopped {:.1} ms",
                    ms("all_ready_ns"),
                    ms("all_stopped_ns")
                );
            }
            Err(err) => self.fail(format!("round {round} M4x{n} warren"), &err),
        }
    }

    /// `warren up` (the command) with `n` copies of the child: until it prints "all programs are
    /// up", its memory, then SIGINT (Ctrl-C) until it has stopped them all and exited.
    pub(super) fn many_warren_up(&mut self, round: usize, n: usize) {
        let result = (|| -> anyhow::Result<()> {
            let warren = self.config.bin.join("warren");
            ensure!(warren.exists(), "{} is not built", warren.display());
            let dir = self.dir.join(format!("up{n}"));
            std::fs::create_dir_all(&dir)?;
            let mut toml = String::new();
            for i in 0..n {
                let _ = writeln!(toml, "[programs.c{i}]\ncommand = {:?}\nready = \"warren\"\n", self.child());
            }
            let file = dir.join("warren.toml");
            std::fs::write(&file, toml)?;
            let start = Instant::now();
            let mut up = Command::new(&warren)
                .arg("up")
                .arg("-f")
                .arg(&file)
                .current_dir(&dir)
                .env("NO_COLOR", "1")
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()?;
            let guard = KillOnDrop(up.id());
            let stdout = up.stdout.take().context("stdout")?;
            let (tx, rx) = mpsc::channel();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if line.contains("all programs are up") {
                        let _ = tx.send(());
                    }
                }
            });
            rx.recv_timeout(Duration::from_secs(60)).context("`warren up` never said all programs are up")?;
            let all_ready = start.elapsed();
            let rss = proc::rss_kib(up.id()).unwrap_or(0);
            let (pss, private) = proc::pss_and_private_kib(up.id()).unwrap_or_default();
            let status = Command::new(&warren).args(["status", "--json"]).current_dir(&dir).output()?;
            let rows: Vec<Value> = serde_json::from_slice(&status.stdout).context("`warren status --json`")?;
            let pids: Vec<u32> = rows.iter().filter_map(|r| r["pid"].as_u64()).map(|p| p as u32).collect();
            ensure!(pids.len() == n, "`warren status` lists {} running programs of {n}", pids.len());
            let start = Instant::now();
            let pid = rustix::process::Pid::from_raw(up.id() as i32).context("pid")?;
            rustix::process::kill_process(pid, rustix::process::Signal::INT)?;
            let deadline = Instant::now() + Duration::from_secs(60);
            let exit = loop {
                if let Some(exit) = up.try_wait()? {
                    break exit;
                }
                ensure!(Instant::now() < deadline, "`warren up` still running 60 s after SIGINT");
                std::thread::sleep(Duration::from_micros(200));
            };
            let all_stopped = start.elapsed();
            std::mem::forget(guard);
            ensure!(exit.success(), "`warren up` exited with {exit}");
            ensure!(pids.iter().all(|&p| !proc::exists(p)), "children outlived `warren up`");
            let s = &mut self.store;
            s.put(&format!("m4x{n}/all_ready_ms"), "warren-up", round, all_ready.as_secs_f64() * 1e3);
            s.put(&format!("m4x{n}/all_stopped_ms"), "warren-up", round, all_stopped.as_secs_f64() * 1e3);
            let mb = |kib: u64| kib as f64 * 1.024 / 1000.0;
            s.put(&format!("m6/host_rss_{n}_mb"), "warren-up", round, mb(rss));
            s.put(&format!("m6/host_pss_{n}_mb"), "warren-up", round, mb(pss));
            s.put(&format!("m6/host_private_{n}_mb"), "warren-up", round, mb(private));
            eprintln!(
                "wb-run: r{round} M4x{n} warren up: ready {:.1} ms, stopped {:.1} ms, RSS {:.1} MB",
                all_ready.as_secs_f64() * 1e3,
                all_stopped.as_secs_f64() * 1e3,
                mb(rss)
            );
            let _ = std::fs::remove_dir_all(&dir);
            Ok(())
        })();
        if let Err(err) = result {
            self.fail(format!("round {round} M4x{n} warren up"), &err);
        }
    }

    pub(super) fn many_supervisord(&mut self, round: usize, n: usize, binary: &Path) {
        let result = (|| -> anyhow::Result<()> {
            let dir = self.dir.join(format!("sv{n}"));
            let sockets: Vec<PathBuf> = (0..n).map(|i| dir.join(format!("c{i}.sock"))).collect();
            let programs: Vec<Program> = sockets
                .iter()
                .enumerate()
                .map(|(i, sock)| Program {
                    name: format!("c{i}"),
                    command: format!("{} serve --signals-only --current-thread {}", self.child(), sock.display()),
                    stdout_logfile: None,
                })
                .collect();
            let sv = Supervisord::start(binary, &dir, &programs)?;
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let start = Instant::now();
            sv.start_all()?;
            // No readiness protocol: ready is when the socket answers Task.Get.
            runtime.block_on(async {
                let mut pending: Vec<&PathBuf> = sockets.iter().collect();
                let deadline = Instant::now() + Duration::from_secs(60);
                while !pending.is_empty() {
                    let mut still = Vec::new();
                    for sock in pending {
                        let answered = match warren_rpc::Client::connect(warren_rpc::Endpoint::unix(sock)).await {
                            Ok(client) => {
                                let ok = client.call::<_, Todo>("Task.Get", GET_ID).await.is_ok_and(|t| t.id == GET_ID);
                                client.close().await;
                                ok
                            }
                            Err(_) => false,
                        };
                        if !answered {
                            still.push(sock);
                        }
                    }
                    pending = still;
                    ensure!(Instant::now() < deadline, "{} children never answered", pending.len());
                    if !pending.is_empty() {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                }
                anyhow::Ok(())
            })?;
            let all_replied = start.elapsed();
            let supervisord_rss = proc::rss_kib(sv.pid()).unwrap_or(0);
            let (supervisord_pss, _) = proc::pss_and_private_kib(sv.pid()).unwrap_or_default();
            let pids = sv.pids()?;
            let mut child_rss: Vec<u64> = pids.iter().filter_map(|&p| proc::rss_kib(p)).collect();
            child_rss.sort_unstable();
            let start = Instant::now();
            sv.stop_all()?;
            let deadline = Instant::now() + Duration::from_secs(60);
            while pids.iter().any(|&p| proc::exists(p)) || sockets.iter().any(|s| s.exists()) {
                ensure!(Instant::now() < deadline, "children still there 60 s after stopAllProcesses");
                std::thread::sleep(Duration::from_micros(200));
            }
            let all_stopped = start.elapsed();
            sv.shutdown()?;
            let s = &mut self.store;
            s.put(&format!("m4x{n}/all_replied_ms"), "supervisord", round, all_replied.as_secs_f64() * 1e3);
            s.put(&format!("m4x{n}/all_stopped_ms"), "supervisord", round, all_stopped.as_secs_f64() * 1e3);
            s.put(&format!("m6/host_rss_{n}_mb"), "supervisord", round, supervisord_rss as f64 * 1.024 / 1000.0);
            s.put(&format!("m6/host_pss_{n}_mb"), "supervisord", round, supervisord_pss as f64 * 1.024 / 1000.0);
            if let Some(rss) = child_rss.get(child_rss.len() / 2) {
                s.put(&format!("m6/child_rss_{n}_mb"), "supervisord", round, *rss as f64 * 1.024 / 1000.0);
            }
            eprintln!(
                "wb-run: r{round} M4x{n} supervisord: replied {:.1} ms, stopped {:.1} ms",
                all_replied.as_secs_f64() * 1e3,
                all_stopped.as_secs_f64() * 1e3
            );
            let _ = std::fs::remove_dir_all(&dir);
            Ok(())
        })();
        if let Err(err) = result {
            self.fail(format!("round {round} M4x{n} supervisord"), &err);
        }
    }
}
