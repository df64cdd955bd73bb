//! The browser end-to-end test as part of `cargo test`: runs `node web/e2e/run.mjs`, which serves the
//! built page with `stde web` and trains in headless Chromium on WebGPU and on the CPU fallback.
//!
//! It needs Chromium (`/usr/bin/chromium` or `$CHROMIUM`), Node with `web/e2e/node_modules`
//! (`npm ci --prefix web/e2e`), the built page (`bash web/build.sh`) and the release `stde` binary.
//! Without them it prints one `skipped: …` line; with `STDE_REQUIRE_BROWSER=1` (set by `.ci/run`)
//! anything missing fails instead.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The release `stde` binary next to this test's own profile directory (`target/release/`), or
/// `$STDE_BIN`.
fn stde_binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("STDE_BIN") {
        return PathBuf::from(bin);
    }
    let name = format!("stde{}", std::env::consts::EXE_SUFFIX);
    let profile_dir = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent()?.parent().map(Path::to_path_buf));
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"));
    // Prefer a release binary: the e2e run also trains with it as the reference.
    [
        target.join("release").join(&name),
        profile_dir.map(|d| d.join(&name)).unwrap_or_default(),
    ]
    .into_iter()
    .find(|p| p.is_file())
    .unwrap_or_else(|| target.join("release").join(name))
}

fn root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    root.canonicalize().unwrap_or(root)
}

/// A Rust source of the page (its crate or the crates compiled into it) modified after the
/// built `.wasm`, if any: testing a stale build would test old code.
fn newer_source(root: &Path) -> Option<PathBuf> {
    let built = std::fs::metadata(root.join("web/www/pkg/stde_web_bg.wasm"))
        .and_then(|m| m.modified())
        .ok()?;
    let mut stack: Vec<PathBuf> = ["web/src", "core/src", "wgsl/src"]
        .iter()
        .map(|d| root.join(d))
        .collect();
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t > built)
            {
                return Some(path);
            }
        }
    }
    None
}

fn node_works() -> bool {
    Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn page_trains_in_headless_chromium() {
    let required = std::env::var("STDE_REQUIRE_BROWSER").is_ok_and(|v| v == "1");
    let root = root();
    let chromium = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    let stde = stde_binary();
    let mut missing = Vec::new();
    if !chromium.is_file() {
        missing.push(format!(
            "Chromium at {} (apt-get install chromium)",
            chromium.display()
        ));
    }
    if !node_works() {
        missing.push("node on PATH".to_string());
    }
    if !root.join("web/e2e/node_modules/playwright-core").is_dir() {
        missing.push("web/e2e/node_modules (npm ci --prefix web/e2e)".to_string());
    }
    if !root.join("web/www/pkg/stde_web.js").is_file() {
        missing.push("the built page web/www/pkg (bash web/build.sh)".to_string());
    } else if let Some(newer) = newer_source(&root) {
        missing.push(format!(
            "an up-to-date page: {} is newer than web/www/pkg (bash web/build.sh)",
            newer.display()
        ));
    }
    if !stde.is_file() {
        missing.push(format!(
            "the stde binary at {} (cargo build --release -p stde-cli)",
            stde.display()
        ));
    }
    if !missing.is_empty() {
        let what = missing.join(", ");
        assert!(
            !required,
            "STDE_REQUIRE_BROWSER=1 but the browser test cannot run: missing {what}"
        );
        eprintln!("skipped: browser end-to-end test (web/e2e/run.mjs): missing {what}");
        return;
    }
    let status = Command::new("node")
        .arg(root.join("web/e2e/run.mjs"))
        .env("STDE_BIN", &stde)
        .env("CHROMIUM", &chromium)
        .current_dir(&root)
        .status()
        .expect("node runs");
    assert!(
        status.success(),
        "web/e2e/run.mjs failed ({status}); screenshots and page states are in web/e2e/artifacts/"
    );
}
