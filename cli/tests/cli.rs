//! End-to-end tests of the `stde` binary: outputs of a run, exact resumption, reproducibility,
//! benchmarks, and one clear error line (never a panic) for every kind of bad input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;

/// The configuration of every tiny run: small enough for the reference backend in well under a
/// second, large enough that training visibly reduces the error.
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
    "--quiet",
];

/// A fresh directory path (not created) unique to this process and call.
fn temp_path(name: &str) -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let path =
        std::env::temp_dir().join(format!("stde-cli-test-{}-{n}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&path);
    path
}

fn stde(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_stde"))
        .args(args)
        .output()
        .expect("the stde binary runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Runs `stde train` with the tiny configuration plus `extra`, writing to `out`.
fn train(out: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["train", "--out", out.to_str().unwrap()];
    args.extend_from_slice(TINY);
    args.extend_from_slice(extra);
    stde(&args)
}

#[track_caller]
fn assert_ok(o: &Output) {
    assert!(
        o.status.success(),
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        stdout(o),
        stderr(o)
    );
}

fn metrics(dir: &Path) -> Value {
    let text = std::fs::read_to_string(dir.join("metrics.json")).expect("metrics.json exists");
    serde_json::from_str(&text).expect("metrics.json is JSON")
}

/// The metrics a resumed or repeated run must reproduce, as their JSON text (bitwise equality).
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
    ]
    .iter()
    .map(|k| format!("{k}={}", m[*k]))
    .collect()
}

fn assert_png(path: &Path) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        bytes.len() > 1000,
        "{} is only {} bytes",
        path.display(),
        bytes.len()
    );
    assert_eq!(
        &bytes[..8],
        b"\x89PNG\r\n\x1a\n",
        "{} is not a PNG",
        path.display()
    );
}

#[test]
fn tiny_run_writes_metrics_history_plots_and_checkpoint() {
    let out = temp_path("outputs");
    let o = train(&out, &["--backend", "reference"]);
    assert_ok(&o);
    let m = metrics(&out);
    assert_eq!(m["status"], "completed");
    assert_eq!(m["equation"], "sine-gordon-two-body");
    assert_eq!(m["dim"], 5);
    assert_eq!(m["backend"], "reference");
    assert_eq!(m["estimator"], "sparse");
    assert_eq!(m["rand_dims"], 2);
    assert_eq!(m["steps"], 60);
    assert_eq!(m["seed"], 0);
    assert_eq!(m["best_step"].as_u64().unwrap() % 20, 0);
    assert_eq!(m["config"]["width"], 16);
    let final_l2 = m["final_rel_l2"].as_f64().unwrap();
    assert!(
        final_l2.is_finite() && final_l2 < 1.0,
        "final rel L2 {final_l2}"
    );
    assert!(m["best_rel_l2"].as_f64().unwrap() <= final_l2);
    assert!(m["final_rel_l1"].as_f64().unwrap().is_finite());
    assert!(m["steps_per_second"].as_f64().unwrap() > 0.0);
    assert!(m["wall_seconds"].as_f64().unwrap() > 0.0);
    if cfg!(target_os = "linux") {
        assert!(m["peak_memory_bytes"].as_u64().unwrap() > 1 << 20);
    }

    let history = std::fs::read_to_string(out.join("history.csv")).unwrap();
    let mut lines = history.lines();
    assert_eq!(
        lines.next(),
        Some("step,loss,rel_l2,rel_l1,lr,loss_var,var_lap,rel_var_lap,seconds")
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    // Logged every 10 steps (the default --log-every).
    let steps: Vec<&str> = rows.iter().map(|r| r[0]).collect();
    assert_eq!(steps, ["10", "20", "30", "40", "50", "60"]);
    for r in &rows {
        assert_eq!(r.len(), 9);
        // The direction variance (V = 2 of d = 5 at random) is measured every 100 steps and at
        // the last step: here only at step 60.
        for (col, name) in [(5, "loss_var"), (6, "var_lap"), (7, "rel_var_lap")] {
            if r[0] != "60" {
                assert!(r[col].is_empty(), "{name} of step {}: {:?}", r[0], r[col]);
                continue;
            }
            let v: f64 = r[col].parse().unwrap_or(f64::NAN);
            assert!(
                v.is_finite() && v >= 0.0,
                "{name} of step {}: {:?}",
                r[0],
                r[col]
            );
        }
        let evaluated = r[0].parse::<u64>().unwrap() % 20 == 0;
        assert_eq!(
            !r[2].is_empty(),
            evaluated,
            "rel_l2 column of step {}",
            r[0]
        );
        assert!(r[1].parse::<f64>().unwrap().is_finite());
    }

    assert_png(&out.join("loss.png"));
    assert_png(&out.join("profile.png"));
    assert_png(&out.join("variance.png"));
    assert_eq!(m["direction_variance"]["measured"], true);
    assert_eq!(m["direction_variance"]["last"]["step"], 60);
    let (cfg, state) = stde_core::checkpoint::load(&out).unwrap();
    assert_eq!((cfg.dim, state.progress.step), (5, 60));

    // The summary names the final and the best error.
    let text = stdout(&o);
    assert!(
        text.contains("final rel L2") && text.contains("best during training"),
        "{text}"
    );

    // config.toml repeats the run exactly.
    let again = temp_path("outputs-again");
    let cfg_path = out.join("config.toml");
    let o = stde(&[
        "train",
        "--config",
        cfg_path.to_str().unwrap(),
        "--backend",
        "reference",
        "--out",
        again.to_str().unwrap(),
        "--quiet",
    ]);
    assert_ok(&o);
    assert_eq!(result_fields(&again), result_fields(&out));
    let _ = std::fs::remove_dir_all(&out);
    let _ = std::fs::remove_dir_all(&again);
}

/// Trains 60 steps straight and 30 + 30 with an interruption; both must end bitwise equal.
fn check_resume_is_exact(backend: &str, extra: &[&str]) {
    let straight = temp_path(&format!("straight-{backend}"));
    let broken = temp_path(&format!("broken-{backend}"));
    let mut flags = vec!["--backend", backend];
    flags.extend_from_slice(extra);
    assert_ok(&train(&straight, &flags));
    let mut first = flags.clone();
    first.extend_from_slice(&["--stop-after", "30"]);
    let o = train(&broken, &first);
    assert_ok(&o);
    assert_eq!(metrics(&broken)["status"], "stopped");
    assert!(!broken.join("loss.png").exists());
    // Without configuration flags the saved configuration and backend are used.
    let mut resume = vec!["train", "--resume", broken.to_str().unwrap(), "--quiet"];
    resume.extend_from_slice(extra);
    let o = stde(&resume);
    assert_ok(&o);
    assert_eq!(metrics(&broken)["status"], "completed");
    assert_eq!(metrics(&broken)["backend"], backend);
    assert_eq!(result_fields(&broken), result_fields(&straight));
    // History was appended, not truncated: every logged step once, in order.
    let history = std::fs::read_to_string(broken.join("history.csv")).unwrap();
    let steps: Vec<&str> = history
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap())
        .collect();
    assert_eq!(steps, ["10", "20", "30", "40", "50", "60"]);
    let _ = std::fs::remove_dir_all(&straight);
    let _ = std::fs::remove_dir_all(&broken);
}

#[test]
fn resumed_reference_run_matches_uninterrupted_run() {
    // The reference keeps f64 on the device but checkpoints f32, and a run continues from what it
    // saved; with equal checkpoint steps the two runs round at the same points.
    check_resume_is_exact("reference", &["--checkpoint-every", "10"]);
}

#[test]
fn resumed_cpu_run_matches_uninterrupted_run() {
    // f32 end to end: the interruption may fall between the regular checkpoints.
    check_resume_is_exact("cpu", &[]);
}

#[test]
fn same_seed_reproduces_and_another_seed_differs() {
    let a = temp_path("seed-a");
    let b = temp_path("seed-b");
    let c = temp_path("seed-c");
    assert_ok(&train(&a, &["--backend", "cpu"]));
    assert_ok(&train(&b, &["--backend", "cpu"]));
    assert_ok(&train(&c, &["--backend", "cpu", "--seed", "1"]));
    assert_eq!(result_fields(&a), result_fields(&b));
    assert_ne!(metrics(&a)["final_rel_l2"], metrics(&c)["final_rel_l2"]);
    for d in [a, b, c] {
        let _ = std::fs::remove_dir_all(d);
    }
}

/// Runs `args` and checks a non-zero `code`, one `error:` line containing `phrase`, no panic.
#[track_caller]
fn assert_rejected(args: &[&str], code: i32, phrase: &str) {
    let o = stde(args);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(code), "{args:?}\nstderr:\n{err}");
    assert!(!err.contains("panicked"), "{args:?} panicked:\n{err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{args:?}: expected one line, got:\n{err}");
    assert!(lines[0].starts_with("error: "), "{args:?}: {err}");
    assert!(err.contains(phrase), "{args:?}: {err:?} lacks {phrase:?}");
}

#[test]
fn bad_input_gets_one_error_line_and_exit_code_2() {
    let dir = temp_path("bad-input");
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("out");
    let out = out.to_str().unwrap();
    let file = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_owned()
    };
    let malformed = file("malformed.toml", "dim = [1,\n");
    let unknown_key = file("unknown.toml", "dim = 5\nwidht = 3\n");
    let wrong_type = file("type.toml", "dim = \"five\"\n");
    let missing = dir.join("missing.toml");
    let missing = missing.to_str().unwrap();
    let blocker = file("not-a-dir", "");
    let under_file = format!("{blocker}/out");
    fn t<'a>(out: &'a str, a: &[&'a str]) -> Vec<&'a str> {
        let mut v = vec![
            "train",
            "--out",
            out,
            "--steps",
            "5",
            "--dim",
            "5",
            "--rand-dims",
            "2",
        ];
        v.extend_from_slice(a);
        v
    }
    let cases: &[(Vec<&str>, &str)] = &[
        (t(out, &["--equation", "wave"]), "sine-gordon-two-body"),
        (
            t(out, &["--estimator", "fancy"]),
            "possible values: sparse, dense, exact",
        ),
        (
            t(out, &["--equation", "poisson-three-body", "--dim", "2"]),
            "needs dimension >= 3",
        ),
        (t(out, &["--rand-dims", "6"]), "V must be between 1 and 5"),
        // The residual gradient spends V on pairs of sides: odd V, and estimators it cannot use.
        (
            t(
                out,
                &[
                    "--equation",
                    "allen-cahn-two-body-gpinn",
                    "--rand-dims",
                    "3",
                ],
            ),
            "V must be a multiple of 2",
        ),
        (
            t(
                out,
                &[
                    "--equation",
                    "sine-gordon-two-body-gpinn",
                    "--estimator",
                    "dense",
                ],
            ),
            "use --estimator sparse or exact",
        ),
        (t(out, &["--steps", "0"]), "invalid steps"),
        (t(out, &["--steps", "-3"]), "must be a positive integer"),
        (t(out, &["--width", "0"]), "invalid width"),
        (t(out, &["--lr", "-1"]), "invalid lr"),
        (t(out, &["--log-every", "0"]), "invalid --log-every"),
        (
            t(out, &["--config", &malformed]),
            "malformed.toml: TOML parse error at line 1",
        ),
        (t(out, &["--config", &unknown_key]), "unknown key \"widht\""),
        (
            t(out, &["--config", &wrong_type]),
            "expected usize in `dim`",
        ),
        (t(out, &["--config", missing]), "missing.toml"),
        (
            vec![
                "train",
                "--out",
                &under_file,
                "--dim",
                "5",
                "--rand-dims",
                "2",
            ],
            "cannot write to output directory",
        ),
        (vec!["train", "--bogus"], "unexpected argument '--bogus'"),
        (
            vec!["bench", "--steps", "0", "--dim", "5", "--rand-dims", "2"],
            "invalid --steps",
        ),
    ];
    for (args, phrase) in cases {
        assert_rejected(args, 2, phrase);
    }
    // None of them trained or wrote a checkpoint.
    assert!(!Path::new(out).join("checkpoint.safetensors").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn resume_errors_name_the_problem_and_keep_the_checkpoint() {
    let run = temp_path("resume-errors");
    assert_ok(&train(&run, &["--backend", "cpu", "--stop-after", "20"]));
    let before = std::fs::read(run.join("checkpoint.safetensors")).unwrap();
    let dir = run.to_str().unwrap();
    assert_rejected(
        &["train", "--resume", dir, "--width", "32"],
        2,
        "width = 16, but width = 32",
    );
    assert_rejected(
        &["train", "--resume", dir, "--steps", "100"],
        2,
        "steps = 60, but steps = 100",
    );
    let empty = temp_path("resume-empty");
    std::fs::create_dir_all(&empty).unwrap();
    assert_rejected(
        &["train", "--resume", empty.to_str().unwrap()],
        2,
        "no checkpoint to resume",
    );
    // A fresh run into a directory with a checkpoint would destroy it.
    let mut args = vec!["train", "--out", dir];
    args.extend_from_slice(TINY);
    assert_rejected(&args, 2, "already holds a checkpoint");
    assert_eq!(
        std::fs::read(run.join("checkpoint.safetensors")).unwrap(),
        before
    );
    // A corrupt checkpoint is reported, not trusted.
    std::fs::write(empty.join("checkpoint.safetensors"), b"garbage").unwrap();
    assert_rejected(
        &["train", "--resume", empty.to_str().unwrap()],
        2,
        "not a valid stde checkpoint",
    );
    let _ = std::fs::remove_dir_all(&run);
    let _ = std::fs::remove_dir_all(&empty);
}

#[test]
fn divergence_names_the_step_and_keeps_the_last_good_checkpoint() {
    for backend in ["reference", "cpu"] {
        let out = temp_path(&format!("diverge-{backend}"));
        // Adam moves every weight by about lr per step: 1e20 overflows the loss within a few
        // steps (step 2 here), after step 1 was evaluated and checkpointed. The guards against
        // finite runaways are off, so that the non-finite path is the one taken.
        let o = train(
            &out,
            &[
                "--backend",
                backend,
                "--lr",
                "1e20",
                "--eval-every",
                "1",
                "--log-every",
                "1",
                "--max-rel-error",
                "inf",
                "--max-loss-ratio",
                "inf",
            ],
        );
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{backend}: {err}");
        assert!(!err.contains("panicked"), "{err}");
        let step: u64 = err
            .split("diverged at step ")
            .nth(1)
            .and_then(|rest| rest.split(':').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{backend}: no step in {err:?}"));
        let m = metrics(&out);
        assert_eq!(m["status"], "diverged");
        assert!(m["error"]
            .as_str()
            .unwrap()
            .contains(&format!("step {step}")));
        // Whatever checkpoint exists is an earlier, finite state; never a diverged or torn one.
        let leftovers: Vec<_> = std::fs::read_dir(&out)
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        if backend == "reference" || out.join("checkpoint.safetensors").exists() {
            let (_, state) = stde_core::checkpoint::load(&out).expect("last good checkpoint loads");
            assert!(
                state.progress.step < step,
                "checkpoint at {} >= {step}",
                state.progress.step
            );
            assert!(state
                .params
                .iter()
                .chain(&state.adam_v)
                .all(|p| p.is_finite()));
        }
        if backend == "reference" {
            assert_eq!(step, 2, "{err}");
        }
        let _ = std::fs::remove_dir_all(&out);
    }
}

#[test]
fn bench_appends_csv_and_json_rows() {
    let dir = temp_path("bench");
    std::fs::create_dir_all(&dir).unwrap();
    let csv = dir.join("bench.csv");
    let json = dir.join("bench.jsonl");
    let args = [
        "bench",
        "--backend",
        "cpu",
        "--dim",
        "5",
        "--rand-dims",
        "2",
        "--width",
        "16",
        "--depth",
        "3",
        "--batch",
        "16",
        "--steps",
        "10",
        "--warmup",
        "2",
        "--test-points",
        "100",
        "--eval",
        "--csv",
        csv.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
    ];
    for _ in 0..2 {
        let o = stde(&args);
        assert_ok(&o);
        assert!(stdout(&o).contains("steps/s"));
    }
    let text = std::fs::read_to_string(&csv).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[0]
        .starts_with("backend,equation,dim,batch,rand_dims,width,depth,estimator,collapsed,steps"));
    assert!(lines[1].starts_with("cpu,sine-gordon-two-body,5,16,2,16,3,sparse,true,10,"));
    let rows: Vec<Value> = std::fs::read_to_string(&json)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["steps"], 10);
    assert!(rows[0]["steps_per_second"].as_f64().unwrap() > 0.0);
    assert!(rows[0]["rel_l2"].as_f64().unwrap().is_finite());
    assert!(rows[0]["commit"].as_str().is_some_and(|c| !c.is_empty()));
    // A CSV with other columns is refused before any work.
    std::fs::write(&csv, "a,b\n").unwrap();
    let mut bad = args.to_vec();
    bad.retain(|a| *a != "--json" && *a != json.to_str().unwrap());
    assert_rejected(&bad, 2, "different header");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The variance columns of `history.csv` by row: `(step, loss_var, var_lap, rel_var_lap)` as text.
fn variance_cells(dir: &Path) -> Vec<(String, String, String, String)> {
    let text = std::fs::read_to_string(dir.join("history.csv")).unwrap();
    text.lines()
        .skip(1)
        .map(|l| {
            let c: Vec<&str> = l.split(',').collect();
            (c[0].into(), c[5].into(), c[6].into(), c[7].into())
        })
        .collect()
}

/// Where nothing is random (the exact estimator) or measuring is switched off, the variance
/// columns stay empty, no variance plot is drawn, and the run says why; `--variance-every N`
/// measures (and logs) exactly the multiples of N, and is saved for a resumed run.
#[test]
fn variance_is_measured_where_directions_are_random_and_said_absent_elsewhere() {
    let exact = temp_path("variance-exact");
    let o = train(&exact, &["--backend", "cpu", "--estimator", "exact"]);
    assert_ok(&o);
    assert!(variance_cells(&exact)
        .iter()
        .all(|(_, a, b, c)| a.is_empty() && b.is_empty() && c.is_empty()));
    assert!(!exact.join("variance.png").exists());
    let m = metrics(&exact);
    assert_eq!(m["direction_variance"]["measured"], false);
    assert!(m["direction_variance"]["reason"]
        .as_str()
        .unwrap()
        .contains("no direction is drawn at random"));
    assert!(
        stdout(&o).contains("dir. sd       none: "),
        "{}",
        stdout(&o)
    );

    let off = temp_path("variance-off");
    let o = train(&off, &["--backend", "cpu", "--variance-every", "off"]);
    assert_ok(&o);
    assert!(variance_cells(&off).iter().all(|(_, a, _, _)| a.is_empty()));
    assert!(!off.join("variance.png").exists());
    assert!(stdout(&o).contains("dir. sd       off"), "{}", stdout(&o));

    let every = temp_path("variance-every");
    let o = train(
        &every,
        &[
            "--backend",
            "cpu",
            "--variance-every",
            "7",
            "--stop-after",
            "30",
        ],
    );
    assert_ok(&o);
    assert!(std::fs::read_to_string(every.join("config.toml"))
        .unwrap()
        .contains("variance-every = 7"));
    assert_ok(&stde(&[
        "train",
        "--resume",
        every.to_str().unwrap(),
        "--quiet",
    ]));
    let cells = variance_cells(&every);
    let measured: Vec<&str> = cells
        .iter()
        .filter(|(_, a, _, _)| !a.is_empty())
        .map(|(s, _, _, _)| s.as_str())
        .collect();
    assert_eq!(measured, ["7", "14", "21", "28", "35", "42", "49", "56"]);
    // The rows of the logging interval are still there, unmeasured.
    assert!(cells.iter().any(|(s, a, _, _)| s == "10" && a.is_empty()));
    assert_png(&every.join("variance.png"));
    for dir in [exact, off, every] {
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// `stde bench --sweep-rand-dims` trains every V on the same seed and prints one table row each,
/// appending one CSV and one JSON row per V; every V reaches the sweep's target error by its end.
#[test]
fn bench_sweep_tabulates_variance_speed_and_error_per_v() {
    let dir = temp_path("sweep");
    std::fs::create_dir_all(&dir).unwrap();
    let csv = dir.join("sweep.csv");
    let json = dir.join("sweep.jsonl");
    let o = stde(&[
        "bench",
        "--backend",
        "cpu",
        "--dim",
        "5",
        "--width",
        "16",
        "--depth",
        "3",
        "--batch",
        "16",
        "--steps",
        "20",
        "--warmup",
        "2",
        "--test-points",
        "100",
        "--sweep-rand-dims",
        "4,2",
        "--csv",
        csv.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
    ]);
    assert_ok(&o);
    let text = stdout(&o);
    let table: Vec<Vec<&str>> = text
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|w| w.first().is_some_and(|v| v.parse::<usize>().is_ok()))
        .collect();
    assert_eq!(
        table.iter().map(|w| w[0]).collect::<Vec<_>>(),
        ["4", "2"],
        "{text}"
    );
    assert!(
        text.contains("sd/rms(lap)") && text.contains("sd/loss"),
        "{text}"
    );
    let rows: Vec<Value> = std::fs::read_to_string(&json)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2);
    let target = rows[0]["target_rel_l2"].as_f64().unwrap();
    for (row, v) in rows.iter().zip([4, 2]) {
        assert_eq!(row["rand_dims"], v);
        assert_eq!(row["variance_measurements"], 20);
        assert!(row["term_relative_sd"]["lap"].as_f64().unwrap() > 0.0);
        assert!(row["loss_relative_sd"].as_f64().unwrap() > 0.0);
        assert!(row["final_rel_l2"].as_f64().unwrap() <= target);
        assert!(row["seconds_to_target"].as_f64().is_some(), "{row}");
        assert_eq!(row["evaluations"].as_array().unwrap().len(), 10);
    }
    let lines = std::fs::read_to_string(&csv).unwrap();
    assert_eq!(lines.lines().count(), 3);
    assert!(lines.starts_with("backend,equation,dim,batch,rand_dims,"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn list_shows_equations_estimators_and_backends() {
    let o = stde(&["list"]);
    assert_ok(&o);
    let text = stdout(&o);
    for (name, _) in stde_core::problem::BUILTIN {
        assert!(text.contains(name), "{name} missing:\n{text}");
    }
    for word in [
        "sparse",
        "dense",
        "exact",
        "cpu",
        "reference",
        "auto",
        ">= 3",
    ] {
        assert!(text.contains(word), "{word} missing:\n{text}");
    }
}

#[test]
fn cuda_without_a_device_is_one_clear_error() {
    if stde_cuda::cuda_available() {
        eprintln!("skipped: a CUDA device is present, so the missing-device path cannot be shown");
        return;
    }
    let out = temp_path("cuda-missing");
    let o = train(&out, &["--backend", "cuda"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("no cuda device available"), "{err}");
    assert_eq!(
        err.lines().filter(|l| l.starts_with("error:")).count(),
        1,
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn wgpu_backend_trains_from_the_cli() {
    let required = std::env::var("STDE_REQUIRE_GPU").is_ok_and(|v| v == "1");
    if stde_wgpu::enumerate_adapters().is_empty() {
        assert!(
            !required,
            "STDE_REQUIRE_GPU=1 but no wgpu adapter is available"
        );
        eprintln!("skipped: no wgpu adapter for the CLI training test");
        return;
    }
    let out = temp_path("wgpu-train");
    let o = train(
        &out,
        &["--backend", "wgpu", "--steps", "30", "--eval-every", "30"],
    );
    assert_ok(&o);
    let m = metrics(&out);
    assert_eq!(m["backend"], "wgpu", "{m}");
    let err = m["final_rel_l2"].as_f64().expect("final_rel_l2");
    assert!(err.is_finite() && err < 1.0, "{m}");
}

/// A problem judged at one reference point (the parabolic problems, `u(0, 0)`) reports the model's
/// value there and its relative error in `metrics.json`, in the summary, and as `rel_l2` in
/// `history.csv`.
#[test]
fn a_problem_judged_at_a_point_reports_its_point_error() {
    let out = temp_path("point");
    let o = stde(&[
        "train",
        "--out",
        out.to_str().unwrap(),
        "--equation",
        "heat-parabolic",
        "--dim",
        "10",
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
    ]);
    assert_ok(&o);
    let m = metrics(&out);
    let value = m["point_value"].as_f64().expect("point_value");
    let err = m["point_rel_error"].as_f64().expect("point_rel_error");
    let expected = (value - 0.47006).abs() / 0.47006;
    assert!(
        (err - expected).abs() <= 1e-9 * expected.max(1.0),
        "{err} vs {expected}"
    );
    assert_eq!(m["final_rel_l2"].as_f64(), Some(err));
    let summary = stdout(&o) + &stderr(&o);
    assert!(summary.contains("u(point)"), "{summary}");
    assert!(summary.contains("point error"), "{summary}");
    // At a dimension without a reference value the model's value is reported, the error is null.
    let out2 = temp_path("point-unknown");
    let o = stde(&[
        "train",
        "--out",
        out2.to_str().unwrap(),
        "--equation",
        "heat-parabolic",
        "--dim",
        "7",
        "--steps",
        "20",
        "--batch",
        "8",
        "--rand-dims",
        "3",
        "--width",
        "8",
        "--depth",
        "2",
        "--eval-every",
        "10",
    ]);
    assert_ok(&o);
    let m = metrics(&out2);
    assert!(m["point_value"].as_f64().is_some_and(f64::is_finite), "{m}");
    assert!(m["point_rel_error"].is_null(), "{m}");
    let _ = std::fs::remove_dir_all(&out);
    let _ = std::fs::remove_dir_all(&out2);
}
