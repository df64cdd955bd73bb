//! `--share-blocks` through the CLI: bad values on every subcommand and in config files are refused
//! with exit 2 and one short error line, a shared run records the setting, reports it, resumes bit
//! for bit and refuses to resume under another setting, and `stde plan` counts its parameters.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A fresh directory path (not created) unique to this process and call.
fn temp_path(name: &str) -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!("stde-sharing-{}-{n}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&path);
    path
}

fn stde(args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_stde"))
        .args(args)
        .output()
        .expect("the stde binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[track_caller]
fn assert_ok(o: &Output) {
    assert!(
        o.status.success(),
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        text(&o.stdout),
        text(&o.stderr)
    );
}

/// Exit code 2, exactly one `error:` line on stderr, short, containing `phrase`, no panic.
#[track_caller]
fn assert_one_error(o: &Output, phrase: &str, what: &str) {
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{what}\nstderr:\n{err}");
    assert!(!err.contains("panicked"), "{what} panicked:\n{err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{what}: expected one line, got:\n{err}");
    assert!(lines[0].starts_with("error: "), "{what}: {err}");
    assert!(lines[0].chars().count() <= 500, "{what}: {err}");
    assert!(
        lines[0].contains(phrase),
        "{what}: {err:?} lacks {phrase:?}"
    );
}

/// A small shared run on the CPU backend.
const TINY: &[&str] = &[
    "--dim",
    "12",
    "--share-blocks",
    "3",
    "--steps",
    "40",
    "--batch",
    "16",
    "--rand-dims",
    "3",
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

fn train(out: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["train", "--out", out.to_str().unwrap()];
    args.extend_from_slice(TINY);
    args.extend_from_slice(extra);
    stde(&args)
}

fn metrics(dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join("metrics.json")).expect("metrics.json exists");
    serde_json::from_str(&text).expect("metrics.json is JSON")
}

#[test]
fn bad_share_blocks_get_exit_2_and_one_error_line() {
    let dir = temp_path("bad");
    std::fs::create_dir_all(&dir).unwrap();
    let file = |name: &str, body: &str| {
        let p = dir.join(name);
        std::fs::write(&p, body).unwrap();
        p.to_str().unwrap().to_owned()
    };
    let configs = [
        (
            file("zero.toml", "dim = 10\nshare-blocks = 0\n"),
            "at least 1",
        ),
        (
            file("uneven.toml", "dim = 10\nshare-blocks = 4\n"),
            "4 does not divide d = 10",
        ),
        (
            file("words.toml", "dim = 10\nshare-blocks = \"four\"\n"),
            "share-blocks",
        ),
        (
            file("negative.toml", "dim = 10\nshare-blocks = -2\n"),
            "share-blocks",
        ),
    ];
    let out = dir.join("out").to_str().unwrap().to_owned();
    let flags: [(&[&str], &str); 7] = [
        (&["--dim", "10", "--share-blocks", "0"], "at least 1"),
        (
            &["--dim", "10", "--share-blocks", "4"],
            "4 does not divide d = 10",
        ),
        (
            &["--dim", "10", "--share-blocks", "20"],
            "larger than d = 10",
        ),
        (&["--dim", "10", "--share-blocks", "-1"], "positive"),
        (&["--dim", "10", "--share-blocks", "abc"], "abc"),
        (&["--dim", "10", "--share-blocks", ""], "share-blocks"),
        // A time column is not part of a block: B must divide d, not the row of d + 1 values.
        (
            &["--equation", "heat", "--dim", "5", "--share-blocks", "3"],
            "3 does not divide d = 5",
        ),
    ];
    let mut cases: Vec<(Vec<String>, &str)> = Vec::new();
    for cmd in ["train", "bench", "plan"] {
        let mut head = vec![cmd.to_string()];
        if cmd == "train" {
            head.extend(["--out".to_string(), out.clone()]);
        }
        if cmd != "plan" {
            head.extend(["--steps", "1", "--backend", "cpu"].map(String::from));
        }
        for (extra, phrase) in &flags {
            let mut args = head.clone();
            args.extend(extra.iter().map(|a| a.to_string()));
            cases.push((args, phrase));
        }
        for (path, phrase) in &configs {
            let mut args = head.clone();
            args.extend(["--config".to_string(), path.clone()]);
            cases.push((args, phrase));
        }
    }
    for (args, phrase) in &cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_one_error(&stde(&args), phrase, &format!("{args:?}"));
    }
    assert!(
        !Path::new(&out).join("metrics.json").exists(),
        "a refused run wrote its outputs"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_shared_run_reports_resumes_exactly_and_keeps_its_setting() {
    let whole = temp_path("whole");
    let o = train(&whole, &[]);
    assert_ok(&o);
    let summary = text(&o.stdout);
    assert!(
        summary.contains("weight share  4 blocks of 3 coordinates"),
        "{summary}"
    );
    let m = metrics(&whole);
    assert_eq!(m["config"]["share-blocks"], 3, "{m}");
    assert_eq!(m["status"], "completed");
    let config = std::fs::read_to_string(whole.join("config.toml")).unwrap();
    assert!(config.contains("share-blocks = 3"), "{config}");

    // Stopped and resumed: the same numbers as the uninterrupted run.
    let parts = temp_path("parts");
    assert_ok(&train(&parts, &["--stop-after", "15"]));
    let dir = parts.to_str().unwrap();
    assert_ok(&stde(&["train", "--resume", dir, "--quiet"]));
    for key in ["final_rel_l2", "final_loss", "best_rel_l2"] {
        assert_eq!(metrics(&parts)[key], m[key], "{key}");
    }

    // The saved file repeats the run.
    let again = temp_path("again");
    let path = whole.join("config.toml");
    assert_ok(&stde(&[
        "train",
        "--out",
        again.to_str().unwrap(),
        "--config",
        path.to_str().unwrap(),
        "--quiet",
    ]));
    assert_eq!(metrics(&again)["final_rel_l2"], m["final_rel_l2"]);

    // Another setting, or none, is refused on resume; so is sharing an unshared run.
    let stopped = temp_path("stopped");
    assert_ok(&train(&stopped, &["--stop-after", "5"]));
    let s = stopped.to_str().unwrap();
    assert_one_error(
        &stde(&["train", "--resume", s, "--share-blocks", "4"]),
        "share-blocks = 3, but share-blocks = 4",
        "resume with another B",
    );
    let unshared = temp_path("unshared");
    let mut args = vec!["train", "--out", unshared.to_str().unwrap()];
    // TINY without its `--share-blocks 3`.
    assert_eq!(TINY[2], "--share-blocks");
    args.extend(TINY[..2].iter().chain(&TINY[4..]));
    args.extend(["--stop-after", "5"]);
    assert_ok(&stde(&args));
    assert_one_error(
        &stde(&[
            "train",
            "--resume",
            unshared.to_str().unwrap(),
            "--share-blocks",
            "3",
        ]),
        "share-blocks = none, but share-blocks = 3",
        "resume an unshared run with sharing",
    );
    for d in [whole, parts, again, stopped, unshared] {
        std::fs::remove_dir_all(d).unwrap();
    }
}

#[test]
fn plan_counts_the_shared_network() {
    let o = stde(&[
        "plan",
        "--equation",
        "sine-gordon-two-body",
        "--dim",
        "1000",
        "--share-blocks",
        "50",
    ]);
    assert_ok(&o);
    let out = text(&o.stdout);
    assert!(
        out.contains("weight sharing: 20 blocks of B = 50 coordinates"),
        "{out}"
    );
    // 128·(20 + 1) + 2·128·129 + 129 for the MLP, 51 for the block.
    let params = 128 * 21 + 2 * 128 * 129 + 129 + 51;
    assert!(out.contains(&format!("({params} parameters)")), "{out}");
    let heat = stde(&[
        "plan",
        "--equation",
        "heat",
        "--dim",
        "6",
        "--share-blocks",
        "2",
    ]);
    assert_ok(&heat);
    let out = text(&heat.stdout);
    assert!(
        out.contains("then the MLP on 4 features (the time unshared)"),
        "{out}"
    );
}
