//! Reliability of a run directory against what users and machines do to it: thread counts, two
//! processes, signals, full disks, corrupted checkpoints, extreme numbers and hostile strings.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;

/// A fresh directory path (not created) unique to this process and call.
fn temp_path(name: &str) -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!(
        "stde-reliability-{}-{n}-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&path);
    path
}

fn stde_cmd(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_stde"));
    c.args(args);
    c
}

fn stde(args: &[&str]) -> Output {
    stde_cmd(args).output().expect("the stde binary runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[track_caller]
fn assert_ok(o: &Output) {
    assert!(
        o.status.success(),
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        stderr(o)
    );
}

fn metrics(dir: &Path) -> Value {
    let text = std::fs::read_to_string(dir.join("metrics.json")).expect("metrics.json exists");
    serde_json::from_str(&text).expect("metrics.json is JSON")
}

/// The numbers a repeated or resumed run must reproduce bit for bit, as JSON text.
fn result_fields(dir: &Path) -> Vec<String> {
    let m = metrics(dir);
    [
        "final_rel_l2",
        "final_rel_l1",
        "best_rel_l2",
        "best_rel_l1",
        "best_step",
        "exact_rms",
        "final_rms_error",
        "final_loss",
        "steps_done",
    ]
    .iter()
    .map(|k| format!("{k}={}", m[*k]))
    .collect()
}

/// The saved parameters and Adam moments as bits.
fn state_bits(dir: &Path) -> Vec<u32> {
    let (_, s) = stde_core::checkpoint::load(dir).expect("the checkpoint loads");
    s.params
        .iter()
        .chain(&s.adam_m)
        .chain(&s.adam_v)
        .map(|v| v.to_bits())
        .collect()
}

/// `history.csv` without its wall-clock column.
fn history_rows(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("history.csv"))
        .expect("history.csv exists")
        .lines()
        .map(|l| l.rsplit_once(',').map_or(l, |(head, _)| head).to_owned())
        .collect()
}

#[test]
fn every_estimator_gives_identical_bits_on_any_thread_count() {
    // d = 2048 with width 16 makes the input layer's product (and, for the exact estimator, the
    // hidden layers' weight gradients over 2 + d blocks) long enough in k to be split across
    // threads, the case whose sums once depended on the thread count.
    let common = [
        "--dim",
        "2048",
        "--batch",
        "16",
        "--rand-dims",
        "16",
        "--width",
        "16",
        "--depth",
        "3",
        "--steps",
        "12",
        "--eval-every",
        "6",
        "--log-every",
        "1",
        "--test-points",
        "64",
        "--backend",
        "cpu",
        "--quiet",
    ];
    for estimator in ["sparse", "dense", "exact"] {
        let mut seen: Option<(Vec<String>, Vec<String>, Vec<u32>)> = None;
        for threads in ["1", "2", "3"] {
            let out = temp_path(&format!("threads-{estimator}-{threads}"));
            let mut args = vec![
                "train",
                "--out",
                out.to_str().unwrap(),
                "--estimator",
                estimator,
            ];
            args.extend_from_slice(&common);
            let o = stde_cmd(&args)
                .env("RAYON_NUM_THREADS", threads)
                .output()
                .expect("runs");
            assert_ok(&o);
            let got = (result_fields(&out), history_rows(&out), state_bits(&out));
            match &seen {
                None => seen = Some(got),
                Some(first) => {
                    assert_eq!(
                        first.0, got.0,
                        "{estimator}: metrics differ on {threads} threads"
                    );
                    assert_eq!(
                        first.1, got.1,
                        "{estimator}: history differs on {threads} threads"
                    );
                    assert!(
                        first.2 == got.2,
                        "{estimator}: parameters differ on {threads} threads"
                    );
                }
            }
            let _ = std::fs::remove_dir_all(&out);
        }
    }
}

/// The configuration of the small runs: a fraction of a second on the CPU backend.
const TINY: &[&str] = &[
    "--dim",
    "5",
    "--steps",
    "60",
    "--batch",
    "16",
    "--rand-dims",
    "2",
    "--width",
    "16",
    "--depth",
    "3",
    "--eval-every",
    "20",
    "--test-points",
    "200",
    "--lr",
    "1e-2",
    "--backend",
    "cpu",
    "--quiet",
];

/// A run long enough (about a second, several thousand steps) to be stopped while it trains.
const LONG: &[&str] = &[
    "--dim",
    "8",
    "--steps",
    "8000",
    "--batch",
    "32",
    "--rand-dims",
    "4",
    "--width",
    "32",
    "--depth",
    "3",
    "--eval-every",
    "2000",
    "--test-points",
    "500",
    "--lr",
    "1e-2",
    "--backend",
    "cpu",
    "--quiet",
];

fn train_args<'a>(out: &'a Path, config: &[&'a str], extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["train", "--out", out.to_str().unwrap()];
    args.extend_from_slice(config);
    args.extend_from_slice(extra);
    args
}

/// The non-empty lines of stderr.
fn error_lines(o: &Output) -> Vec<String> {
    stderr(o)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect()
}

/// Checks `code`, exactly one short `error:` line on stderr containing `phrase`, and no panic.
#[track_caller]
fn assert_one_error(o: &Output, code: i32, phrase: &str, what: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(code), "{what}\nstderr:\n{err}");
    assert!(!err.contains("panicked"), "{what} panicked:\n{err}");
    let lines = error_lines(o);
    assert_eq!(lines.len(), 1, "{what}: expected one line, got:\n{err}");
    assert!(lines[0].starts_with("error: "), "{what}: {err}");
    assert!(
        lines[0].chars().count() <= 500,
        "{what}: an error line of {} characters",
        lines[0].chars().count()
    );
    assert!(
        lines[0].contains(phrase),
        "{what}: {err:?} lacks {phrase:?}"
    );
}

/// Checks a run that failed while it worked: `code`, and one `error:` line containing `phrase`
/// as the last line of stderr (after the per-evaluation lines a run prints), no panic.
#[track_caller]
fn assert_run_fails(o: &Output, code: i32, phrase: &str, what: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(code), "{what}\nstderr:\n{err}");
    assert!(!err.contains("panicked"), "{what} panicked:\n{err}");
    let lines = error_lines(o);
    let errors: Vec<&String> = lines.iter().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(
        errors.len(),
        1,
        "{what}: expected one error line, got:\n{err}"
    );
    assert_eq!(lines.last(), errors.first().copied(), "{what}: {err}");
    assert!(errors[0].chars().count() <= 500, "{what}: {}", errors[0]);
    assert!(
        errors[0].contains(phrase),
        "{what}: {err:?} lacks {phrase:?}"
    );
}

/// The names of the files in `dir`, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// A number from the clock, different on every call, for choosing random moments.
fn random_below(n: u64) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish() % n.max(1)
}

/// Sends `signal` (`INT`, `TERM`, `HUP`, …) to `pid` with the shell's `kill`.
fn send_signal(pid: u32, signal: &str) {
    let status = Command::new("sh")
        .args(["-c", &format!("kill -s {signal} {pid}")])
        .status()
        .expect("sh runs");
    assert!(status.success(), "kill -s {signal} {pid} failed");
}

/// Waits until the run in `dir` holds its lock (so its signal handlers are installed) and returns
/// the PID the lock file names.
fn wait_for_lock(dir: &Path, child: &mut std::process::Child) -> u32 {
    let start = std::time::Instant::now();
    loop {
        if let Ok(text) = std::fs::read_to_string(dir.join(".stde.lock")) {
            if let Ok(pid) = text.trim().parse() {
                return pid;
            }
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the run ended ({status}) before taking its lock");
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(60),
            "no lock file in {}",
            dir.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// Everything a resumed run must reproduce of an uninterrupted one.
fn assert_same_run(a: &Path, b: &Path, what: &str) {
    assert_eq!(result_fields(a), result_fields(b), "{what}: metrics");
    assert_eq!(history_rows(a), history_rows(b), "{what}: history.csv");
    assert!(state_bits(a) == state_bits(b), "{what}: checkpoint bits");
}

#[test]
fn two_processes_on_one_run_directory_lose_no_data() {
    let dir = temp_path("two-processes");
    let mut first = stde_cmd(&train_args(&dir, LONG, &["--log-every", "10"]))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawns");
    let pid = wait_for_lock(&dir, &mut first);
    assert_eq!(pid, first.id());
    // A resume and a fresh run into the same directory while it trains: each gets one error that
    // names the holder, and touches nothing.
    let busy = format!("in use by another stde process (PID {pid})");
    let o = stde(&["train", "--resume", dir.to_str().unwrap(), "--quiet"]);
    assert_one_error(&o, 2, &busy, "resume while running");
    let o = stde(&train_args(&dir, LONG, &[]));
    assert_one_error(&o, 2, &busy, "second fresh run");
    let status = first.wait().expect("waits");
    assert!(status.success(), "{status}");
    let m = metrics(&dir);
    assert_eq!(m["status"], "completed");
    // Every logged row survived, once, in order.
    let steps: Vec<u64> = history_rows(&dir)
        .iter()
        .skip(1)
        .map(|r| r.split(',').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(steps, (1..=800).map(|i| i * 10).collect::<Vec<_>>());
    // The lock is gone with its owner, and no temporary file is left.
    assert_eq!(
        listing(&dir),
        [
            "checkpoint.safetensors",
            "config.toml",
            "history.csv",
            "loss.png",
            "metrics.json",
            "profile.png",
            "variance.png"
        ]
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_killed_run_leaves_no_stale_lock_and_resumes_exactly() {
    let straight = temp_path("kill9-straight");
    assert_ok(&stde(&train_args(&straight, LONG, &[])));
    let dir = temp_path("kill9");
    // A checkpoint every 500 steps, so one exists soon after the start.
    let mut child = stde_cmd(&train_args(&dir, LONG, &["--checkpoint-every", "500"]))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawns");
    wait_for_lock(&dir, &mut child);
    let start = std::time::Instant::now();
    while !dir.join("checkpoint.safetensors").exists() {
        assert!(start.elapsed().as_secs() < 60, "no checkpoint appeared");
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    std::thread::sleep(std::time::Duration::from_millis(random_below(200)));
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    // The kernel released the lock; the file it left names a dead process and is taken over.
    let o = stde(&["train", "--resume", dir.to_str().unwrap(), "--quiet"]);
    assert_ok(&o);
    assert_same_run(&straight, &dir, "killed and resumed");
    let _ = std::fs::remove_dir_all(&straight);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_signal_at_a_random_step_stops_gracefully_and_resume_is_bit_exact() {
    let straight = temp_path("signal-straight");
    assert_ok(&stde(&train_args(&straight, LONG, &[])));
    let total = metrics(&straight)["wall_seconds"].as_f64().unwrap();
    for (signal, code) in [("INT", 130), ("TERM", 143), ("HUP", 129)] {
        let dir = temp_path(&format!("signal-{signal}"));
        let mut interrupted = false;
        for attempt in 0..5 {
            let _ = std::fs::remove_dir_all(&dir);
            let child = stde_cmd(&train_args(&dir, LONG, &[]))
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawns");
            let mut child = child;
            let pid = wait_for_lock(&dir, &mut child);
            // Somewhere in the first 80 % of the run's own length (shorter on later attempts).
            let window = (total * 800.0) as u64 >> attempt;
            let delay = random_below(window.max(1));
            std::thread::sleep(std::time::Duration::from_millis(delay));
            send_signal(pid, signal);
            let o = child.wait_with_output().expect("waits");
            if o.status.code() == Some(0) {
                // It finished before the signal came; try an earlier moment.
                continue;
            }
            let what = format!("SIG{signal} after {delay} ms");
            assert_eq!(o.status.code(), Some(code), "{what}: {}", stderr(&o));
            let lines = error_lines(&o);
            let last = lines.last().expect("a line");
            assert!(
                last.starts_with(&format!("interrupted by SIG{signal} after step ")),
                "{what}: {last}"
            );
            assert!(
                !lines.iter().any(|l| l.starts_with("error:")),
                "{what}: {lines:?}"
            );
            let m = metrics(&dir);
            assert_eq!(m["status"], "interrupted", "{what}");
            assert_eq!(m["signal"], format!("SIG{signal}"), "{what}");
            let (_, state) = stde_core::checkpoint::load(&dir).expect("checkpoint");
            assert_eq!(m["steps_done"], state.progress.step, "{what}");
            assert!(last.contains(&format!("after step {} of 8000", state.progress.step)));
            let o = stde(&["train", "--resume", dir.to_str().unwrap(), "--quiet"]);
            assert_ok(&o);
            assert_same_run(&straight, &dir, &what);
            interrupted = true;
            break;
        }
        assert!(
            interrupted,
            "SIG{signal}: the run always finished before the signal"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
    let _ = std::fs::remove_dir_all(&straight);
}

#[test]
fn a_second_signal_stops_at_once() {
    // The reference backend with the exact estimator takes about a second a step, so both signals
    // land inside one step: the first asks for a graceful stop, the second ends the process.
    let dir = temp_path("second-signal");
    let args = [
        "train",
        "--out",
        dir.to_str().unwrap(),
        "--backend",
        "reference",
        "--estimator",
        "exact",
        "--dim",
        "64",
        "--batch",
        "64",
        "--width",
        "128",
        "--depth",
        "3",
        "--steps",
        "1000",
        "--test-points",
        "100",
        "--quiet",
    ];
    let mut child = stde_cmd(&args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawns");
    let pid = wait_for_lock(&dir, &mut child);
    std::thread::sleep(std::time::Duration::from_millis(100));
    send_signal(pid, "INT");
    std::thread::sleep(std::time::Duration::from_millis(50));
    let sent = std::time::Instant::now();
    send_signal(pid, "TERM");
    let o = child.wait_with_output().expect("waits");
    assert_eq!(o.status.code(), Some(143), "{}", stderr(&o));
    assert!(
        sent.elapsed() < std::time::Duration::from_millis(500),
        "took {:?} after the second signal",
        sent.elapsed()
    );
    // It stopped without finishing its step: nothing was recorded as interrupted.
    assert!(!dir.join("metrics.json").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn timed_checkpoints_survive_a_kill_before_the_first_evaluation() {
    let dir = temp_path("timed");
    // No evaluation (and so no step-driven checkpoint) before step 8000; a checkpoint every second.
    let mut child = stde_cmd(&train_args(
        &dir,
        LONG,
        &[
            "--steps",
            "400000",
            "--eval-every",
            "400000",
            "--checkpoint-seconds",
            "1",
        ],
    ))
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::null())
    .spawn()
    .expect("spawns");
    wait_for_lock(&dir, &mut child);
    let start = std::time::Instant::now();
    while !dir.join("checkpoint.safetensors").exists() {
        assert!(
            start.elapsed().as_secs() < 30,
            "no timed checkpoint appeared"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    let (cfg, state) = stde_core::checkpoint::load(&dir).expect("the timed checkpoint loads");
    assert!(state.progress.step > 0 && state.progress.step < cfg.eval_every);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn checkpoint_interval_and_every_setting_are_saved_with_the_run() {
    let dir = temp_path("settings");
    let first = [
        "--checkpoint-every",
        "7",
        "--checkpoint-seconds",
        "3600",
        "--log-every",
        "5",
        "--max-rel-error",
        "500",
        "--max-loss-ratio",
        "1e9",
        "--stop-after",
        "14",
    ];
    assert_ok(&stde(&train_args(&dir, TINY, &first)));
    let toml = std::fs::read_to_string(dir.join("config.toml")).unwrap();
    for line in [
        "checkpoint-every = 7",
        "checkpoint-seconds = 3600",
        "log-every = 5",
        "max-rel-error = 500.0",
        "max-loss-ratio = 1000000000.0",
        "backend = \"cpu\"",
    ] {
        assert!(toml.contains(line), "config.toml lacks {line:?}:\n{toml}");
    }
    // A resume without flags keeps them all (rows every 5 steps, the guards, the intervals).
    let d = dir.to_str().unwrap();
    assert_ok(&stde(&[
        "train",
        "--resume",
        d,
        "--quiet",
        "--stop-after",
        "23",
    ]));
    let m = metrics(&dir);
    assert_eq!(m["status"], "stopped");
    assert_eq!(m["run"]["checkpoint-every"], 7, "{m}");
    assert_eq!(m["run"]["log-every"], 5, "{m}");
    assert_eq!(m["run"]["max-rel-error"], 500.0, "{m}");
    let steps: Vec<String> = history_rows(&dir)
        .iter()
        .skip(1)
        .map(|r| r.split(',').next().unwrap().to_owned())
        .collect();
    assert_eq!(steps, ["5", "10", "15", "20"]);
    // The rest of the run from there, uninterrupted, is the run from scratch with the same flags.
    assert_ok(&stde(&["train", "--resume", d, "--quiet"]));
    let straight = temp_path("settings-straight");
    assert_ok(&stde(&train_args(&straight, TINY, &first[..10])));
    assert_same_run(&straight, &dir, "resumed with saved settings");
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&straight);
}

/// Runs `stde` with the simulated full disk of `STDE_TEST_WRITE_LIMIT` (see `cli/src/files.rs`).
fn stde_with_disk(limit: u64, args: &[&str]) -> Output {
    stde_cmd(args)
        .env("STDE_TEST_WRITE_LIMIT", limit.to_string())
        .output()
        .expect("runs")
}

#[test]
fn a_full_disk_fails_cleanly_and_the_run_resumes() {
    let straight = temp_path("disk-straight");
    assert_ok(&stde(&train_args(&straight, TINY, &[])));
    // No space at all: a fresh run fails before any work and leaves an empty directory.
    let dir = temp_path("disk-fresh");
    let o = stde_with_disk(0, &train_args(&dir, TINY, &[]));
    assert_one_error(&o, 1, "No space left on device", "fresh run on a full disk");
    assert!(listing(&dir).is_empty(), "{:?}", listing(&dir));
    let _ = std::fs::remove_dir_all(&dir);

    let dir = temp_path("disk-resume");
    assert_ok(&stde(&train_args(&dir, TINY, &["--stop-after", "40"])));
    let d = dir.to_str().unwrap();
    let before = listing(&dir);
    let checkpoint = std::fs::read(dir.join("checkpoint.safetensors")).unwrap();
    // A resume with almost no space fails and leaves no probe, lock or temporary file.
    let o = stde_with_disk(100, &["train", "--resume", d, "--quiet"]);
    assert_one_error(&o, 1, "No space left on device", "resume on a full disk");
    assert_eq!(listing(&dir), before);
    assert_eq!(
        std::fs::read(dir.join("checkpoint.safetensors")).unwrap(),
        checkpoint
    );
    let _ = std::fs::remove_dir_all(&dir);

    // A checkpoint that does not fit fails the run with exit 1 and keeps the previous one.
    let dir = temp_path("disk-checkpoint");
    let o = stde_with_disk(
        15_000,
        &train_args(&dir, TINY, &["--checkpoint-every", "10"]),
    );
    assert_run_fails(
        &o,
        1,
        "saving the checkpoint failed",
        "checkpoint on a full disk",
    );
    let (_, state) = stde_core::checkpoint::load(&dir).expect("the previous checkpoint loads");
    assert_eq!(state.progress.step, 10);
    assert!(
        !listing(&dir).iter().any(|n| n.contains("tmp")),
        "{:?}",
        listing(&dir)
    );
    // With space again, the run continues from it to the uninterrupted result.
    assert_ok(&stde(&[
        "train",
        "--resume",
        dir.to_str().unwrap(),
        "--quiet",
    ]));
    assert_same_run(&straight, &dir, "resumed after a failed checkpoint");
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&straight);
}

#[test]
fn plots_that_fail_do_not_count_as_completed_and_are_redrawn_on_resume() {
    let straight = temp_path("plots-straight");
    assert_ok(&stde(&train_args(&straight, TINY, &[])));
    let dir = temp_path("plots");
    assert_ok(&stde(&train_args(&dir, TINY, &["--stop-after", "40"])));
    // Room for the last steps and their checkpoint, not for a plot.
    let ckpt = std::fs::metadata(dir.join("checkpoint.safetensors"))
        .unwrap()
        .len();
    let limit = 3 * ckpt + 16_384;
    let png = std::fs::metadata(straight.join("loss.png")).unwrap().len();
    assert!(png > limit, "the plot ({png} bytes) would fit in {limit}");
    let d = dir.to_str().unwrap();
    let o = stde_with_disk(limit, &["train", "--resume", d, "--quiet"]);
    assert_run_fails(
        &o,
        1,
        "loss.png failed: No space left on device",
        "plots on a full disk",
    );
    assert_ne!(metrics(&dir)["status"], "completed");
    assert!(!dir.join("loss.png").exists() && !dir.join("profile.png").exists());
    assert!(
        !listing(&dir).iter().any(|n| n.contains("tmp")),
        "{:?}",
        listing(&dir)
    );
    // Training itself finished; a resume only writes what is missing.
    let (_, state) = stde_core::checkpoint::load(&dir).unwrap();
    assert_eq!(state.progress.step, 60);
    let o = stde(&["train", "--resume", d, "--quiet"]);
    assert_ok(&o);
    assert!(
        stderr(&o).contains("outputs are incomplete"),
        "{}",
        stderr(&o)
    );
    assert_eq!(metrics(&dir)["status"], "completed");
    assert_same_run(&straight, &dir, "plots redrawn");
    for png in ["loss.png", "profile.png"] {
        let bytes = std::fs::read(dir.join(png)).unwrap();
        assert!(bytes.starts_with(b"\x89PNG") && bytes.ends_with(b"IEND\xae\x42\x60\x82"));
    }
    // A truncated plot is noticed too.
    let loss = dir.join("loss.png");
    let bytes = std::fs::read(&loss).unwrap();
    std::fs::write(&loss, &bytes[..bytes.len() / 2]).unwrap();
    assert_ok(&stde(&["train", "--resume", d, "--quiet"]));
    assert_eq!(std::fs::read(&loss).unwrap().len(), bytes.len());
    let o = stde(&["train", "--resume", d, "--quiet"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("already finished"));
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&straight);
}

/// A tmpfs mounted for one test and unmounted when dropped.
struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn a_real_full_disk_leaves_the_run_intact_and_resumable() {
    let mnt = temp_path("tmpfs");
    std::fs::create_dir_all(&mnt).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"])
        .arg(&mnt)
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        let _ = std::fs::remove_dir_all(&mnt);
        eprintln!("skipped: cannot mount a tmpfs here (STDE_TEST_WRITE_LIMIT covers full disks)");
        return;
    }
    let mnt = Mount(mnt);
    let dir = mnt.0.join("run");
    assert_ok(&stde(&train_args(&dir, TINY, &["--stop-after", "40"])));
    let before = listing(&dir);
    let checkpoint = std::fs::read(dir.join("checkpoint.safetensors")).unwrap();
    // Fill the file system to the last byte.
    {
        use std::io::Write;
        let mut filler = std::fs::File::create(mnt.0.join("filler")).unwrap();
        let block = vec![0u8; 4096];
        while filler.write_all(&block).is_ok() {}
        while filler.write_all(&[0]).is_ok() {}
    }
    let d = dir.to_str().unwrap();
    let o = stde(&["train", "--resume", d, "--quiet"]);
    assert_one_error(&o, 1, "No space left on device", "resume on a full tmpfs");
    assert_eq!(listing(&dir), before);
    assert_eq!(
        std::fs::read(dir.join("checkpoint.safetensors")).unwrap(),
        checkpoint
    );
    std::fs::remove_file(mnt.0.join("filler")).unwrap();
    assert_ok(&stde(&["train", "--resume", d, "--quiet"]));
    assert_eq!(metrics(&dir)["status"], "completed");
}

/// Rewrites the checkpoint in `dir` with its metadata changed by `edit` (the tensors untouched).
fn edit_checkpoint_metadata(dir: &Path, edit: impl FnOnce(&mut serde_json::Map<String, Value>)) {
    let path = dir.join("checkpoint.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut header: Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    edit(header["__metadata__"].as_object_mut().unwrap());
    let mut text = serde_json::to_vec(&header).unwrap();
    while !text.len().is_multiple_of(8) {
        text.push(b' ');
    }
    let mut out = (text.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&text);
    out.extend_from_slice(&bytes[8 + n..]);
    std::fs::write(&path, out).unwrap();
}

/// Overwrites value `index` of tensor `name` in the checkpoint in `dir`.
fn poke_tensor(dir: &Path, name: &str, index: usize, value: f32) {
    let path = dir.join("checkpoint.safetensors");
    let mut bytes = std::fs::read(&path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let start = header[name]["data_offsets"][0].as_u64().unwrap() as usize;
    let at = 8 + n + start + 4 * index;
    bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
    std::fs::write(&path, bytes).unwrap();
}

/// A way to damage the checkpoint in a directory.
type Corruption = Box<dyn Fn(&Path)>;

#[test]
fn corrupted_checkpoints_are_refused_with_exit_2() {
    let good = temp_path("corrupt-good");
    assert_ok(&stde(&train_args(&good, TINY, &["--stop-after", "20"])));
    let cases: Vec<(&str, Corruption, &str)> = vec![
        (
            "NaN in the Adam state",
            Box::new(|d| poke_tensor(d, "adam_m", 3, f32::NAN)),
            "tensor \"adam_m\" holds NaN at index 3",
        ),
        (
            "infinite parameter",
            Box::new(|d| poke_tensor(d, "params", 0, f32::INFINITY)),
            "tensor \"params\" holds inf at index 0",
        ),
        (
            "negative second moment",
            Box::new(|d| poke_tensor(d, "adam_v", 5, -2.0)),
            "tensor \"adam_v\" holds -2 at index 5",
        ),
        (
            "step far past --steps",
            Box::new(|d| {
                edit_checkpoint_metadata(d, |m| {
                    let p = m["progress"]
                        .as_str()
                        .unwrap()
                        .replace("\"step\":20,", "\"step\":999999999,");
                    m.insert("progress".into(), p.into());
                })
            }),
            "step 999999999 is past the run's 60 steps",
        ),
        (
            "configuration of another shape",
            Box::new(|d| {
                edit_checkpoint_metadata(d, |m| {
                    let c = m["config"]
                        .as_str()
                        .unwrap()
                        .replace("\"width\":16", "\"width\":17");
                    m.insert("config".into(), c.into());
                })
            }),
            "but its configuration's model has",
        ),
        (
            "unreadable run settings",
            Box::new(|d| {
                edit_checkpoint_metadata(d, |m| {
                    m.insert("stde-cli.run".into(), "log-every = 0\n".into());
                })
            }),
            "invalid --log-every",
        ),
        (
            "unknown backend",
            Box::new(|d| {
                edit_checkpoint_metadata(d, |m| {
                    m.insert("stde-cli.backend".into(), "abacus".into());
                })
            }),
            "names no backend: \"abacus\"",
        ),
        (
            "truncated file",
            Box::new(|d| {
                let p = d.join("checkpoint.safetensors");
                let b = std::fs::read(&p).unwrap();
                std::fs::write(&p, &b[..b.len() - 7]).unwrap();
            }),
            "not a valid stde checkpoint",
        ),
    ];
    for (what, corrupt, phrase) in cases {
        let dir = temp_path("corrupt");
        std::fs::create_dir_all(&dir).unwrap();
        for f in [
            "checkpoint.safetensors",
            "config.toml",
            "history.csv",
            "metrics.json",
        ] {
            std::fs::copy(good.join(f), dir.join(f)).unwrap();
        }
        corrupt(&dir);
        let bytes = std::fs::read(dir.join("checkpoint.safetensors")).unwrap();
        let o = stde(&["train", "--resume", dir.to_str().unwrap(), "--quiet"]);
        assert_one_error(&o, 2, phrase, what);
        // Refused, not repaired or replaced.
        assert_eq!(
            std::fs::read(dir.join("checkpoint.safetensors")).unwrap(),
            bytes,
            "{what}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
    let _ = std::fs::remove_dir_all(&good);
}

#[test]
fn seeds_of_2_pow_63_and_more_round_trip_through_config_toml() {
    for seed in ["9223372036854775808", "18446744073709551615"] {
        let dir = temp_path("seed");
        assert_ok(&stde(&train_args(&dir, TINY, &["--seed", seed])));
        let toml = std::fs::read_to_string(dir.join("config.toml")).unwrap();
        assert!(toml.contains(&format!("seed = \"{seed}\"")), "{toml}");
        assert_eq!(metrics(&dir)["seed"].to_string(), seed);
        let again = temp_path("seed-again");
        let cfg = dir.join("config.toml");
        let o = stde(&[
            "train",
            "--config",
            cfg.to_str().unwrap(),
            "--out",
            again.to_str().unwrap(),
            "--quiet",
        ]);
        assert_ok(&o);
        assert_same_run(&dir, &again, "config.toml repeats the run");
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::remove_dir_all(&again);
    }
}

#[test]
fn bench_checks_its_output_paths_before_any_work() {
    let dir = temp_path("bench-paths");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("plain-file");
    std::fs::write(&file, "").unwrap();
    let under_file = file.join("out.csv");
    let missing_dir = dir.join("no/such/dir/out.json");
    // A benchmark that would take minutes: every refusal must come first.
    let slow = [
        "bench",
        "--backend",
        "cpu",
        "--dim",
        "1000",
        "--steps",
        "1000000",
    ];
    for (flag, path, phrase) in [
        ("--csv", dir.as_path(), "is a directory"),
        ("--json", dir.as_path(), "is a directory"),
        ("--csv", under_file.as_path(), "Not a directory"),
        ("--json", missing_dir.as_path(), "No such file or directory"),
    ] {
        let mut args = slow.to_vec();
        args.extend_from_slice(&[flag, path.to_str().unwrap()]);
        let start = std::time::Instant::now();
        let o = stde(&args);
        assert_one_error(&o, 2, phrase, &format!("bench {flag} {}", path.display()));
        assert!(start.elapsed().as_secs() < 20, "bench ran before refusing");
    }
    // A good --csv with a bad --json leaves no empty CSV behind.
    let csv = dir.join("new.csv");
    let mut args = slow.to_vec();
    args.extend_from_slice(&[
        "--csv",
        csv.to_str().unwrap(),
        "--json",
        dir.to_str().unwrap(),
    ]);
    assert_one_error(&stde(&args), 2, "is a directory", "good csv, bad json");
    assert!(!csv.exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_runaway_run_ends_as_diverged_with_exit_1() {
    // lr = 1e10 keeps the loss finite but the error runs away: the default guard stops it at the
    // first evaluation, keeping the checkpoint of step 10.
    let dir = temp_path("runaway");
    let o = stde(&train_args(
        &dir,
        TINY,
        &["--lr", "1e10", "--checkpoint-every", "10"],
    ));
    assert_run_fails(
        &o,
        1,
        "training diverged at step 20: the relative L2 test error is",
        "runaway",
    );
    assert!(stderr(&o).contains("(--max-rel-error)"));
    let m = metrics(&dir);
    assert_eq!(m["status"], "diverged");
    let (_, state) = stde_core::checkpoint::load(&dir).expect("the last good checkpoint");
    assert_eq!(state.progress.step, 10);
    let _ = std::fs::remove_dir_all(&dir);
    // A loss that jumps by more than the ratio over its best stops it as well.
    let dir = temp_path("runaway-loss");
    let o = stde(&train_args(
        &dir,
        TINY,
        &["--lr", "1e10", "--log-every", "1", "--eval-every", "60"],
    ));
    assert_run_fails(&o, 1, "times its best", "loss ratio");
    assert!(stderr(&o).contains("(--max-loss-ratio)"));
    let _ = std::fs::remove_dir_all(&dir);
    // The flags move the thresholds: with both guards off the same run ends "completed".
    let dir = temp_path("runaway-off");
    let o = stde(&train_args(
        &dir,
        TINY,
        &[
            "--lr",
            "1e10",
            "--max-rel-error",
            "inf",
            "--max-loss-ratio",
            "inf",
        ],
    ));
    assert_ok(&o);
    assert!(metrics(&dir)["final_rel_l2"].as_f64().unwrap() > 1e3);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn hostile_strings_and_paths_give_one_short_escaped_error_line() {
    let dir = temp_path("hostile");
    std::fs::create_dir_all(&dir).unwrap();
    let blocker = dir.join("file");
    std::fs::write(&blocker, "").unwrap();
    let long = "x".repeat(100_000);
    let o = stde(&["train", "--equation", &long]);
    assert_one_error(&o, 2, "(100000 characters)", "100 KB --equation");
    // 50 MB in a config file, as a value and as a key.
    let huge = "y".repeat(50 << 20);
    for (what, text) in [
        ("value", format!("equation = \"{huge}\"\n")),
        ("wrong type", format!("dim = \"{huge}\"\n")),
        ("key", format!("\"{huge}\" = 1\n")),
    ] {
        let cfg = dir.join("huge.toml");
        std::fs::write(&cfg, text).unwrap();
        let o = stde(&[
            "train",
            "--config",
            cfg.to_str().unwrap(),
            "--out",
            dir.to_str().unwrap(),
        ]);
        assert_one_error(&o, 2, &format!("({} characters)", 50 << 20), what);
    }
    // A newline in a path (or a value) cannot forge a second line.
    let forged = format!("{}/a\nerror: forged\x1b[2J", blocker.display());
    for args in [
        vec![
            "train",
            "--out",
            forged.as_str(),
            "--dim",
            "5",
            "--rand-dims",
            "2",
        ],
        vec!["train", "--resume", forged.as_str()],
        vec!["train", "--config", forged.as_str()],
        vec!["bench", "--csv", forged.as_str()],
        vec!["train", "--equation", "a\nerror: forged"],
        vec!["train", "--dim", "5\nerror: forged"],
        vec!["web", "--dir", forged.as_str()],
    ] {
        let o = stde(&args);
        assert_one_error(&o, 2, "error: forged", &format!("{args:?}"));
        let err = stderr(&o);
        assert!(err.contains("\\nerror: forged"), "{err:?}");
        assert!(!err.contains('\x1b'), "{err:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn no_subcommand_prints_usage() {
    let o = stde(&[]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.contains("Usage: stde <COMMAND>"), "{err}");
    assert!(err.contains("train") && err.contains("bench"), "{err}");
    assert!(!err.contains("error:"), "{err}");
}

/// A small valid problem file (d from 2 to 8) that the bad problem files break.
const PROBLEM: &str = r#"name = "small"
min-dim = 2
max-dim = 8

[params]
c = { len = "d-1", draw = "normal" }

[terms]
lap = "laplacian"

[pde]
domain = "ball"
lhs = "lap + sin(u)"
rhs = "manufactured"

[ansatz]
b = "1 - norm2(x)"

[exact]
solution = "(1 - norm2(x)) * sum(i in 0..d-1, c[i] * sin(x[i] + x[i+1]))"
"#;

/// `base` with `from` (which occurs once) replaced by `to`.
fn edit(base: &str, from: &str, to: &str) -> String {
    assert_eq!(base.matches(from).count(), 1, "{from:?} is not unique");
    base.replacen(from, to, 1)
}

/// A text without its one `‸`, and the 1-based line and column (in characters) of the mark.
fn unmark(marked: &str) -> (String, usize, usize) {
    let at = marked.find('‸').expect("a mark");
    let before = &marked[..at];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (marked.replacen('‸', "", 1), line, col)
}

#[test]
fn at_least_a_hundred_bad_inputs_get_exit_2_and_one_short_error_line() {
    let dir = temp_path("table");
    std::fs::create_dir_all(&dir).unwrap();
    let path = |name: &str| dir.join(name).to_str().unwrap().to_owned();
    let file = |name: &str, text: &str| {
        std::fs::write(dir.join(name), text).unwrap();
        path(name)
    };
    let out = path("out");
    let plain = file("plain", "");
    let under_plain = format!("{plain}/sub");
    let missing = path("missing.toml");
    let empty_dir = path("empty");
    std::fs::create_dir_all(&empty_dir).unwrap();
    // A finished run (for overwrite) and a fake built page (for a port already in use).
    let done = path("done");
    assert_ok(&stde(&train_args(
        Path::new(&done),
        TINY,
        &["--stop-after", "5"],
    )));
    let page = path("page");
    std::fs::create_dir_all(dir.join("page/pkg")).unwrap();
    std::fs::write(dir.join("page/pkg/stde_web.js"), "").unwrap();
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy_port = busy.local_addr().unwrap().port().to_string();
    let csv_other = file("other.csv", "a,b\n");
    let configs: Vec<(String, &str)> = [
        ("malformed", "dim = [1,\n"),
        ("unknown-key", "widht = 3\n"),
        ("wrong-type", "dim = \"five\"\n"),
        ("negative", "dim = -5\n"),
        ("float-dim", "dim = 5.5\n"),
        ("bad-enum", "estimator = \"fancy\"\n"),
        ("bad-equation", "equation = \"wave\"\n"),
        ("seed-negative", "seed = -1\n"),
        ("seed-text", "seed = \"lots\"\n"),
        ("seed-float", "seed = 1.5\n"),
        ("seed-too-big", "seed = \"18446744073709551616\"\n"),
        ("lr-nan", "lr = nan\n"),
        ("lr-inf", "lr = inf\n"),
        ("eval-every-zero", "eval-every = 0\n"),
        ("run-not-table", "run = 3\n"),
        ("run-unknown", "[run]\ncheckpoint-evry = 3\n"),
        ("run-log-zero", "[run]\nlog-every = 0\n"),
        ("run-ratio-nan", "[run]\nmax-loss-ratio = nan\n"),
        ("run-backend", "[run]\nbackend = \"abacus\"\n"),
        ("run-variance-zero", "[run]\nvariance-every = 0\n"),
        (
            "run-variance-word",
            "[run]\nvariance-every = \"sometimes\"\n",
        ),
        ("run-variance-negative", "[run]\nvariance-every = -2\n"),
        ("run-type", "[run]\ncheckpoint-seconds = \"soon\"\n"),
        ("binary", "\u{0}\u{1}\u{2}"),
        ("overflow", "dim = 99999999999999999999999\n"),
    ]
    .iter()
    .map(|(name, text)| (file(&format!("{name}.toml"), text), *name))
    .collect();
    // Every case is small enough that, were it wrongly accepted, it would finish at once.
    let t = |a: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = [
            "train",
            "--out",
            &out,
            "--dim",
            "5",
            "--rand-dims",
            "2",
            "--steps",
            "5",
            "--width",
            "4",
            "--test-points",
            "10",
            "--quiet",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        v.extend(a.iter().map(|s| s.to_string()));
        v
    };
    let b = |a: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = [
            "bench",
            "--dim",
            "5",
            "--rand-dims",
            "2",
            "--steps",
            "2",
            "--warmup",
            "0",
            "--width",
            "4",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        v.extend(a.iter().map(|s| s.to_string()));
        v
    };
    let own = |a: &[&str]| -> Vec<String> { a.iter().map(|s| s.to_string()).collect() };
    let mut cases: Vec<Vec<String>> = Vec::new();
    // Integer flags of the configuration: negative, not a number, fractional, empty, too large.
    for flag in [
        "--dim",
        "--batch",
        "--rand-dims",
        "--width",
        "--depth",
        "--test-points",
    ] {
        for value in ["-1", "abc", "1.5", "", "99999999999999999999999", "0"] {
            cases.push(t(&[flag, value]));
        }
    }
    for flag in [
        "--steps",
        "--eval-every",
        "--seed",
        "--checkpoint-every",
        "--checkpoint-seconds",
        "--log-every",
    ] {
        for value in ["-1", "abc", "1e3", "18446744073709551616"] {
            cases.push(t(&[flag, value]));
        }
    }
    for flag in [
        "--steps",
        "--eval-every",
        "--checkpoint-every",
        "--log-every",
        "--stop-after",
    ] {
        cases.push(t(&[flag, "0"]));
    }
    for value in ["abc", "nan", "inf", "-1", "0", "1e400"] {
        cases.push(t(&["--lr", value]));
    }
    for value in ["abc", "nan", "1", "0.5", "-3"] {
        cases.push(t(&["--max-loss-ratio", value]));
    }
    for value in ["abc", "nan", "0", "-1"] {
        cases.push(t(&["--max-rel-error", value]));
    }
    for value in ["0", "-1", "abc", "", "1.5", "offf"] {
        cases.push(t(&["--variance-every", value]));
    }
    for (flag, value) in [
        ("--equation", "wave"),
        ("--equation", ""),
        ("--equation", "Poisson-two-body"),
        ("--estimator", "fancy"),
        ("--schedule", "step"),
        ("--activation", "relu"),
        ("--backend", "tpu"),
    ] {
        cases.push(t(&[flag, value]));
    }
    // Extreme sizes and impossible combinations.
    for a in [
        &["--dim", "18446744073709551615"][..],
        &["--batch", "4294967296"],
        &["--test-points", "4294967296"],
        &["--estimator", "dense", "--rand-dims", "4294967296"],
        &["--depth", "100000000"],
        &["--steps", "4294967296"],
        &["--equation", "poisson-three-body", "--dim", "2"],
        &["--rand-dims", "6"],
    ] {
        cases.push(t(a));
    }
    // Structure, paths and files.
    cases.push(t(&["--bogus"]));
    cases.push(t(&["extra"]));
    cases.push(t(&["--resume", &done]));
    cases.push(own(&["train", "--resume", &path("nowhere")]));
    cases.push(own(&["train", "--resume", &empty_dir]));
    cases.push(own(&["train", "--resume", &plain]));
    cases.push(own(&["train", "--resume", &done, "--width", "32"]));
    cases.push(own(&["train", "--resume", &done, "--steps", "61"]));
    cases.push(own(&[
        "train",
        "--out",
        &under_plain,
        "--dim",
        "5",
        "--rand-dims",
        "2",
    ]));
    cases.push(own(&[
        "train",
        "--out",
        &done,
        "--dim",
        "5",
        "--rand-dims",
        "2",
        "--steps",
        "60",
    ]));
    cases.push(t(&["--config", &missing]));
    cases.push(t(&["--config", &empty_dir]));
    for (cfg, _) in &configs {
        cases.push(t(&["--config", cfg]));
    }
    // bench.
    for a in [
        &["--steps", "0"][..],
        &["--steps", "-1"],
        &["--warmup", "abc"],
        &["--warmup", "18446744073709551615", "--steps", "2"],
        &["--dim", "0"],
        &["--csv", &empty_dir],
        &["--json", &under_plain],
        &["--csv", &csv_other],
        &["--bogus"],
        &["--equation", "wave"],
        &["--config", &missing],
        &["--config", &configs[0].0],
        &["--lr", "nan"],
        &["--estimator", "fancy"],
        &["--backend", "tpu"],
        &["--dim", "18446744073709551615"],
        &["--eval", "yes"],
    ] {
        cases.push(b(a));
    }
    // bench sweeps over V: a V larger than d, a repeated, zero or non-numeric V, one that
    // conflicts with --rand-dims, the exact estimator, and a variance interval of 0 or without a
    // sweep.
    let sweep = |a: &[&str]| -> Vec<String> {
        let mut v = own(&[
            "bench", "--dim", "5", "--steps", "2", "--warmup", "0", "--width", "4",
        ]);
        v.extend(a.iter().map(|s| s.to_string()));
        v
    };
    for a in [
        &["--sweep-rand-dims", "2,9"][..],
        &["--sweep-rand-dims", "2,2"],
        &["--sweep-rand-dims", "0,2"],
        &["--sweep-rand-dims", ""],
        &["--sweep-rand-dims", "2,x"],
        &["--sweep-rand-dims", "2,-4"],
        &["--sweep-rand-dims", "2,4", "--rand-dims", "2"],
        &["--sweep-rand-dims", "2,4", "--estimator", "exact"],
        &["--sweep-rand-dims", "2,4", "--variance-every", "0"],
        &["--sweep-rand-dims", "2,4", "--variance-every", "soon"],
        &["--variance-every", "5"],
    ] {
        cases.push(sweep(a));
    }
    // list, web and the top level.
    for a in [
        &["list", "--bogus"][..],
        &["list", "extra"],
        &["list", "--dim", "5"],
        &["web", "--port", "65536"],
        &["web", "--port", "-1"],
        &["web", "--port", "abc"],
        &["web", "--dir", &path("no-page")],
        &["web", "--dir", &plain],
        &["web", "--dir", &empty_dir],
        &["web", "--dir", &page, "--port", &busy_port],
        &["web", "--bogus"],
        &["web", "extra"],
        &["bogus"],
        &["--bogus"],
        &["help", "bogus"],
    ] {
        cases.push(own(a));
    }
    // plan.
    let small = file("small.toml", PROBLEM);
    for a in [
        &["plan", "--bogus"][..],
        &["plan", "extra"],
        &["plan", "--equation", "wave"],
        &["plan", "--equation", "biharmonic", "--problem", &small],
        &["plan", "--problem", &missing],
        &["plan", "--problem", &empty_dir],
        &["plan", "--problem", &under_plain],
        &["plan", "--dim", "0"],
        &["plan", "--dim", "-1"],
        &["plan", "--dim", "abc"],
        &["plan", "--estimator", "fancy"],
        &["plan", "--rand-dims", "0"],
        &["plan", "--config", &missing],
        &["plan", "--config", &configs[0].0],
        &["plan", "--equation", "poisson-three-body", "--dim", "2"],
        &[
            "plan",
            "--equation",
            "poisson-two-body",
            "--dim",
            "5",
            "--rand-dims",
            "6",
        ],
        &["plan", "--equation", "biharmonic", "--dim", "65"],
        &["plan", "--problem", &small, "--dim", "9"],
        &["plan", "--problem", &small, "--dim", "1"],
        &["train", "--problem", &missing],
        &["train", "--problem", &empty_dir],
    ] {
        cases.push(own(a));
    }
    assert!(cases.len() >= 100, "only {} cases", cases.len());
    for args in &cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = stde(&args);
        assert_one_error(&o, 2, "", &format!("{args:?}"));
    }
    // Malformed problem files, given to `plan` and to `train`: the error names the file, the line
    // and the column of the mistake (marked with `‸` in the text, which is removed).
    let mut located: Vec<(Vec<String>, String)> = Vec::new();
    let bad_files: Vec<(&str, String)> = vec![
        ("function", edit(PROBLEM, "lap + sin(u)", "lap + ‸sinn(u)")),
        ("variable", edit(PROBLEM, "lap + sin(u)", "lap + sin(‸v)")),
        ("paren", edit(PROBLEM, "lap + sin(u)", "lap + sin‸(u")),
        ("window", edit(PROBLEM, "x[i] + x[i+1]", "x[i] + ‸x[i+2]")),
        ("term", edit(PROBLEM, "lap + sin(u)", "lap + sin(u) + ‸bih")),
        ("arity", edit(PROBLEM, "lap + sin(u)", "lap + ‸sin(u, u)")),
        ("type", edit(PROBLEM, "lap + sin(u)", "lap + sin(u) * ‸c")),
        ("time", edit(PROBLEM, "lap + sin(u)", "lap + sin(u) * ‸t")),
        ("toml", edit(PROBLEM, "[pde]", "[pde‸")),
        ("key", edit(PROBLEM, "rhs = ", "‸rsh = ")),
        (
            "operator",
            edit(PROBLEM, "lap = \"laplacian\"", "lap = ‸\"laplace\""),
        ),
        (
            "sde",
            edit(PROBLEM, "domain = \"ball\"", "domain = ‸\"sde-marginal\""),
        ),
        (
            "exact",
            edit(
                PROBLEM.split("[exact]").next().unwrap_or_default(),
                "rhs = \"manufactured\"",
                "rhs = ‸\"manufactured\"",
            ),
        ),
        (
            "length",
            edit(PROBLEM, "c = { len = \"d-1\"", "c = ‸{ len = \"0\""),
        ),
        ("min-dim", edit(PROBLEM, "min-dim = 2", "min-dim = ‸0")),
        (
            "biased",
            edit(
                &edit(
                    PROBLEM,
                    "lap = \"laplacian\"",
                    "lap = \"laplacian\"\nbih = ‸\"biharmonic\"",
                ),
                "[params]",
                "[defaults]\nestimator = \"sparse\"\n\n[params]",
            ),
        ),
        // The TOML parser reads the control characters as a key and stops where `=` should be.
        ("binary", "\u{0}\u{1}\u{2}‸".to_owned()),
        ("empty", "‸".to_owned()),
    ];
    for (name, marked) in &bad_files {
        let (text, line, col) = unmark(marked);
        let f = file(&format!("bad-{name}.toml"), &text);
        let phrase = format!("{f}:{line}:{col}: ");
        located.push((
            own(&["plan", "--problem", &f, "--dim", "5"]),
            phrase.clone(),
        ));
        located.push((t(&["--problem", &f]), phrase));
    }
    // An estimator chosen on the command line that cannot estimate a term without bias, and a
    // window wider than the dimension asked for: at the term's declaration.
    let (text, line, col) = unmark(&edit(
        PROBLEM,
        "lap = \"laplacian\"",
        "lap = \"laplacian\"\nbih = ‸\"biharmonic\"",
    ));
    let f = file("bih.toml", &text);
    let phrase = format!("{f}:{line}:{col}: the sparse estimator cannot estimate term `bih`");
    for est in ["sparse", "exact"] {
        let phrase = phrase.replace("sparse", est);
        located.push((
            own(&["plan", "--problem", &f, "--estimator", est, "--dim", "4"]),
            phrase.clone(),
        ));
        located.push((t(&["--problem", &f, "--estimator", est]), phrase));
    }
    let (text, line, col) = unmark(&edit(
        PROBLEM,
        "lap = \"laplacian\"",
        "lap = \"laplacian\"\nmix = ‸{ operator = \"mixed-window\", orders = [1, 2, 1] }",
    ));
    let f = file("wide.toml", &text);
    let phrase = format!("{f}:{line}:{col}: term `mix`: a window of 3 coordinates");
    located.push((
        own(&["plan", "--problem", &f, "--dim", "2"]),
        phrase.clone(),
    ));
    located.push((
        own(&[
            "train",
            "--problem",
            &f,
            "--dim",
            "2",
            "--rand-dims",
            "1",
            "--out",
            &out,
        ]),
        phrase,
    ));
    located.push((
        own(&[
            "plan",
            "--equation",
            "biharmonic",
            "--dim",
            "4",
            "--estimator",
            "sparse",
        ]),
        "<built-in biharmonic>:".to_owned(),
    ));
    assert!(located.len() >= 40, "only {} located cases", located.len());
    for (args, phrase) in &located {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = stde(&args);
        assert_one_error(&o, 2, phrase, &format!("{args:?}"));
    }
    // None of them trained or left a checkpoint behind.
    assert!(!Path::new(&out).join("checkpoint.safetensors").exists());
    drop(busy);
    let _ = std::fs::remove_dir_all(&dir);
}
