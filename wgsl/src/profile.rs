//! Counters of the recording machinery (dispatches, submissions, uploads, read-backs, objects
//! created) and, when profiling is on, wall time per [`Kernel`] measured by waiting for each
//! dispatch on its own.
//!
//! Profiling is switched on by `STDE_WGPU_PROFILE=1` at [`crate::WgpuBackend::new`] (the report is
//! then printed to stderr when the backend is dropped) or by
//! [`crate::WgpuBackend::set_profiling`]. It submits and waits after every dispatch, so it slows a
//! run down and only says where the device time goes; the counters are always kept (they cost an
//! increment) so that "dispatches per step" can be checked without it.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::kernels::Kernel;

/// The time and dispatch count of one kernel.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct KernelTime {
    /// Dispatches recorded.
    pub dispatches: u64,
    /// Wall seconds from submitting a dispatch alone to its completion (profiling only).
    pub seconds: f64,
}

/// What the backend did since the last [`crate::WgpuBackend::reset_profile`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Profile {
    /// Per kernel, in [`Kernel`] order.
    pub kernels: BTreeMap<Kernel, KernelTime>,
    /// Per kind of compiled-program kernel (all programs together), by its name
    /// (`program_primal`, `program_series`, …).
    pub programs: BTreeMap<&'static str, KernelTime>,
    /// Queue submissions.
    pub submits: u64,
    /// Uploads staged in the upload ring (recorded as copies, no submission).
    pub staged_uploads: u64,
    /// Uploads written directly (after submitting the recorded work).
    pub direct_uploads: u64,
    /// Downloads (each maps one or more staging buffers and waits).
    pub downloads: u64,
    /// Buffer-to-buffer copies recorded.
    pub copies: u64,
    /// Bind groups created (cache misses).
    pub bind_groups_created: u64,
    /// Compute pipelines created.
    pub pipelines_created: u64,
    /// wgpu buffers created (allocations, scratch and staging buffers).
    pub buffers_created: u64,
    /// Seconds spent waiting for work recorded before a profiled dispatch (copies, uploads) to
    /// finish (profiling only).
    pub other_seconds: f64,
    /// Seconds spent in downloads: submission, mapping and the wait (profiling only).
    pub download_seconds: f64,
}

impl Profile {
    /// Total dispatches (fixed and compiled-program kernels).
    pub fn dispatches(&self) -> u64 {
        self.all_kernels().map(|(_, k)| k.dispatches).sum()
    }

    /// Total seconds attributed to kernels.
    pub fn kernel_seconds(&self) -> f64 {
        self.all_kernels().map(|(_, k)| k.seconds).sum()
    }

    /// Every row by name: the fixed kernels, then the compiled programs' kernels.
    fn all_kernels(&self) -> impl Iterator<Item = (&'static str, &KernelTime)> {
        let fixed = self.kernels.iter().map(|(k, t)| (k.name(), t));
        fixed.chain(self.programs.iter().map(|(name, t)| (*name, t)))
    }

    /// A table of the counters divided by `per` (e.g. the number of training steps), kernels
    /// sorted by time.
    pub fn report(&self, per: u64) -> String {
        let per = per.max(1) as f64;
        let mut out = String::new();
        let total = self.kernel_seconds();
        let _ = writeln!(
            out,
            "{:<28} {:>10} {:>12} {:>7}",
            "kernel", "dispatches", "ms", "share"
        );
        let mut rows: Vec<_> = self.all_kernels().collect();
        rows.sort_by(|a, b| b.1.seconds.total_cmp(&a.1.seconds));
        for (name, t) in rows {
            let _ = writeln!(
                out,
                "{:<28} {:>10.1} {:>12.3} {:>6.1}%",
                name,
                t.dispatches as f64 / per,
                1e3 * t.seconds / per,
                if total > 0.0 {
                    100.0 * t.seconds / total
                } else {
                    0.0
                }
            );
        }
        let _ = writeln!(
            out,
            "{:<28} {:>10.1} {:>12.3}",
            "all kernels",
            self.dispatches() as f64 / per,
            1e3 * total / per
        );
        let _ = writeln!(
            out,
            "other waits {:.3} ms, downloads {:.3} ms",
            1e3 * self.other_seconds / per,
            1e3 * self.download_seconds / per
        );
        let _ = write!(
            out,
            "submits {:.1}, downloads {:.1}, staged uploads {:.1}, direct uploads {:.1}, \
             copies {:.1}, bind groups created {:.1}, pipelines created {:.1}, \
             buffers created {:.1}",
            self.submits as f64 / per,
            self.downloads as f64 / per,
            self.staged_uploads as f64 / per,
            self.direct_uploads as f64 / per,
            self.copies as f64 / per,
            self.bind_groups_created as f64 / per,
            self.pipelines_created as f64 / per,
            self.buffers_created as f64 / per,
        );
        out
    }
}
