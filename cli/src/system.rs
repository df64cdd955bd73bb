//! Facts about the running process and checkout: peak memory and the git commit.

/// The peak resident set size of this process in bytes (`VmHWM` of `/proc/self/status`), or
/// `None` where that file does not exist (not Linux).
pub fn peak_memory_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line
        .trim_start_matches("VmHWM:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// `git rev-parse HEAD` of the current directory, or `"unknown"` outside a checkout or without git.
pub fn git_commit() -> String {
    std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

/// Bytes as a short human-readable string (`1.5 GiB`).
pub fn format_bytes(bytes: Option<u64>) -> String {
    let Some(b) = bytes else {
        return "unknown".into();
    };
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < units.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", units[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peak_memory_is_read_on_linux() {
        if cfg!(target_os = "linux") {
            let peak = peak_memory_bytes().expect("VmHWM on Linux");
            assert!(peak > 1 << 20, "peak RSS {peak} bytes is implausibly small");
        }
    }

    #[test]
    fn bytes_format_with_binary_units() {
        assert_eq!(format_bytes(Some(512)), "512 B");
        assert_eq!(format_bytes(Some(3 << 29)), "1.5 GiB");
        assert_eq!(format_bytes(None), "unknown");
    }
}
