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
