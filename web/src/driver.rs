//! `Driver`: one run of the page on any backend, advanced a tick at a time. A tick enqueues a few
//! steps, never past the next evaluation, and awaits one loss read-back; evaluations and the
//! heatmaps' data are separate awaited calls, so the page decides when to pay for them.

use serde::Serialize;
use stde_core::backend::GenericStep;
use stde_core::problem::ProblemSpec;
use stde_core::train::{Evaluation, TrainConfig, TrainError, Trainer};

use crate::slice::{self, Slice, GRID};

/// Above this many values (`cells × d`), the heatmap evaluates a two-input copy of the network
/// instead of [`Trainer::predict`] on full-length points.
const FULL_PREDICT_VALUES: usize = 1 << 20;

/// What one tick did.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Tick {
    /// Steps completed after the tick.
    pub step: u64,
    /// Steps this tick ran.
    pub ran: u64,
    /// Loss (mean squared residual) of the tick's last step.
    pub loss: f64,
    /// `(step, loss)` of every step of the tick when asked for (see [`Driver::advance`]), else of
    /// the last one only.
    pub losses: Vec<(u64, f64)>,
    /// Learning rate of the tick's last step.
    pub lr: f64,
    /// Whether an evaluation is due now (every `eval_every` steps and at the end).
    pub evaluate: bool,
    /// Whether all steps are done.
    pub finished: bool,
}

/// A run driven by the page.
#[derive(Debug)]
pub struct Driver<'b, B: GenericStep> {
    trainer: Trainer<'b, B>,
    cells: Vec<(usize, [f64; 2])>,
    /// `u*` at `cells`, computed on first use (`Some(None)`: the problem has no exact solution).
    exact: Option<Option<Vec<f64>>>,
}

impl<'b, B: GenericStep> Driver<'b, B> {
    /// Allocates the run of `spec` (a shipped problem or one typed into the page).
    ///
    /// # Errors
    /// As [`Trainer::with_problem`].
    pub fn new(backend: &'b B, cfg: TrainConfig, spec: &ProblemSpec) -> Result<Self, TrainError> {
        Ok(Self {
            trainer: Trainer::with_problem(backend, cfg, spec, None)?,
            cells: slice::disk_cells(GRID),
            exact: None,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &TrainConfig {
        self.trainer.config()
    }

    /// Steps completed.
    pub fn step(&self) -> u64 {
        self.trainer.progress().step
    }

    /// Whether all steps are done.
    pub fn finished(&self) -> bool {
        self.trainer.finished()
    }

    /// Enqueues up to `max_steps` steps (at least one, and never past the next evaluation or the
    /// end) and awaits the loss of the last, or of every one with `every_loss` (a read-back per
    /// step: cheap on the CPU backend, a pipeline drain per step on a GPU).
    ///
    /// # Errors
    /// [`TrainError::Backend`] if the device fails, [`TrainError::Diverged`] on a non-finite loss.
    pub async fn advance(&mut self, max_steps: u64, every_loss: bool) -> Result<Tick, TrainError> {
        let cfg = self.trainer.config();
        let (every, total) = (cfg.eval_every, cfg.steps);
        let step = self.step();
        let next_eval = (step / every + 1) * every;
        let n = max_steps
            .max(1)
            .min(next_eval.min(total).saturating_sub(step));
        let mut lr = self.trainer.current_lr();
        let mut losses = Vec::new();
        for i in 0..n {
            lr = self.trainer.current_lr();
            self.trainer.step();
            if every_loss || i + 1 == n {
                losses.push((self.step(), self.trainer.loss().await?));
            }
        }
        let (step, loss) = match losses.last() {
            Some(&last) => last,
            // Nothing left to run: report the latest step's loss again.
            None => (self.step(), self.trainer.loss().await?),
        };
        let finished = self.finished();
        Ok(Tick {
            step,
            ran: n,
            loss,
            losses,
            lr,
            evaluate: n > 0 && (step % every == 0 || finished),
            finished,
        })
    }

    /// The relative errors on the test set.
    ///
    /// # Errors
    /// [`TrainError::Backend`] if a read fails.
    pub async fn evaluate(&mut self) -> Result<Evaluation, TrainError> {
        self.trainer.evaluate().await
    }

    /// The network, the exact solution and their difference on the slice `(x₁, x₂, 0, …, 0)` (at
    /// `t = 0` for a time-dependent problem; without `u*` and the difference for a problem that has
    /// no exact solution).
    ///
    /// # Errors
    /// [`TrainError::Backend`] if a read fails.
    pub async fn slice(&mut self) -> Result<Slice, TrainError> {
        let dim = self.config().dim;
        let width = self.trainer.input_width();
        let points = slice::embed(&self.cells, width);
        let u = if self.cells.len() * dim <= FULL_PREDICT_VALUES {
            self.trainer.predict(&points).await?
        } else {
            let params = self.trainer.host_state().await?.params;
            let small = slice::restrict_to_slice(self.trainer.mlp_shape(), &params);
            let pts: Vec<f64> = self.cells.iter().flat_map(|(_, x)| *x).collect();
            let m = small.eval(&pts);
            // The ansatz u = A + B·m at the full points (O(d) per cell, no network there).
            let (a, b) = self.trainer.ansatz_at(&points);
            m.iter()
                .zip(a.iter().zip(&b))
                .map(|(m, (a, b))| a + b * m)
                .collect()
        };
        let step = self.step();
        let exact = match &self.exact {
            Some(e) => e,
            None => self.exact.insert(self.trainer.exact_at(&points)),
        };
        Ok(slice::assemble(
            GRID,
            step,
            &self.cells,
            &u,
            exact.as_deref(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::form::{default_config, read_text, EXAMPLE};
    use stde_core::backend::CpuBackend;
    use stde_core::train::EstimatorKind;

    fn small() -> TrainConfig {
        TrainConfig {
            steps: 7,
            eval_every: 3,
            test_points: 64,
            ..default_config()
        }
    }

    fn shipped(name: &str) -> ProblemSpec {
        stde_core::problem::builtin(name)
            .expect("shipped")
            .expect("reads")
    }

    fn driver(be: &CpuBackend, cfg: TrainConfig) -> Driver<'_, CpuBackend> {
        let spec = shipped(&cfg.equation);
        Driver::new(be, cfg, &spec).expect("config")
    }

    #[test]
    fn ticks_stop_at_every_evaluation_and_at_the_end() {
        let be = CpuBackend::with_threads(1);
        let mut d = driver(&be, small());
        let mut seen = Vec::new();
        while !d.finished() {
            let t = pollster::block_on(d.advance(100, false)).expect("tick");
            assert_eq!(t.losses, [(t.step, t.loss)]);
            seen.push((t.step, t.ran, t.evaluate));
        }
        assert_eq!(seen, [(3, 3, true), (6, 3, true), (7, 1, true)]);
    }

    #[test]
    fn tick_losses_equal_the_trainers() {
        let be = CpuBackend::with_threads(1);
        let cfg = small();
        let mut d = driver(&be, cfg.clone());
        let mut t = Trainer::new(&be, cfg, None).expect("config");
        let tick = pollster::block_on(d.advance(1, false)).expect("tick");
        let tick2 = pollster::block_on(d.advance(2, true)).expect("tick");
        let mut want = Vec::new();
        for _ in 0..3 {
            t.step();
            want.push((
                t.progress().step,
                pollster::block_on(t.loss()).expect("loss"),
            ));
        }
        assert_eq!(tick.losses, want[..1]);
        assert_eq!(tick2.losses, want[1..]);
        assert_eq!(tick2.loss, want[2].1);
    }

    #[test]
    fn a_typed_copy_of_a_shipped_problem_trains_as_the_shipped_one() {
        // The text box's example is sine-gordon-two-body under another name: the same parameters
        // from the same seed, so the same losses bit for bit.
        let be = CpuBackend::with_threads(1);
        let typed = read_text(EXAMPLE).expect("example");
        assert_ne!(typed.name, "sine-gordon-two-body");
        let cfg = small();
        let mut a = Driver::new(
            &be,
            TrainConfig {
                equation: typed.name.clone(),
                ..cfg.clone()
            },
            &typed,
        )
        .expect("typed");
        let mut b = driver(&be, cfg);
        let ta = pollster::block_on(a.advance(5, true)).expect("tick");
        let tb = pollster::block_on(b.advance(5, true)).expect("tick");
        assert_eq!(ta.losses.len(), 3);
        assert_eq!(ta.losses, tb.losses);
        let ea = pollster::block_on(a.evaluate()).expect("evaluate");
        let eb = pollster::block_on(b.evaluate()).expect("evaluate");
        assert_eq!(ea, eb);
    }

    /// The heatmap of `cfg`'s run after two steps, and the network on the full points of the slice.
    fn slice_and_full(cfg: TrainConfig) -> (Slice, Vec<f64>, usize) {
        let be = CpuBackend::with_threads(1);
        let mut d = driver(&be, cfg);
        pollster::block_on(d.advance(2, false)).expect("tick");
        let s = pollster::block_on(d.slice()).expect("slice");
        let width = d.trainer.input_width();
        let pts = slice::embed(&d.cells, width);
        let full = pollster::block_on(d.trainer.predict(&pts)).expect("predict");
        (s, full, width)
    }

    fn assert_same(s: &Slice, full: &[f64]) {
        let got: Vec<f64> = s.u.iter().flatten().copied().collect();
        assert_eq!(got.len(), full.len());
        for (g, w) in got.iter().zip(full) {
            assert!((g - w).abs() <= 1e-9 * (1.0 + w.abs()), "{g} vs {w}");
        }
    }

    #[test]
    fn slice_paths_agree() {
        // d = 1000 takes the restricted two-input path, the full path is forced by comparing
        // with `predict` directly.
        let (s, full, _) = slice_and_full(TrainConfig {
            dim: 1000,
            ..small()
        });
        assert_same(&s, &full);
        assert!(s.has_exact);
        assert_eq!(s.exact.iter().flatten().count(), full.len());
        assert!(s.diff.iter().flatten().all(|v| v.is_finite()));
    }

    #[test]
    fn slice_paths_agree_with_a_time_column() {
        // heat's network reads (x, t): the restricted copy keeps columns x₁ and x₂, and the slice
        // sits at t = 0 (the time column is zero too).
        let (s, full, width) = slice_and_full(TrainConfig {
            equation: "heat".into(),
            dim: 800,
            estimator: EstimatorKind::Sparse,
            ..small()
        });
        assert_eq!(width, 801);
        assert_same(&s, &full);
        assert!(s.has_exact);
        assert!(s.exact.iter().flatten().all(|v| v.is_finite()));
    }

    #[test]
    fn a_problem_judged_at_one_point_has_no_exact_heatmap() {
        let be = CpuBackend::with_threads(1);
        let mut d = driver(
            &be,
            TrainConfig {
                equation: "heat-parabolic".into(),
                rand_dims: 10,
                ..small()
            },
        );
        pollster::block_on(d.advance(3, false)).expect("tick");
        let s = pollster::block_on(d.slice()).expect("slice");
        assert!(!s.has_exact);
        assert!(s.exact.iter().all(Option::is_none));
        assert!(s.diff.iter().all(Option::is_none));
        assert!(s.u.iter().flatten().all(|v| v.is_finite()));
        assert!(s.u.iter().flatten().count() > 1000);
        // Its error is that of u(0, 0) against the reference value at d = 10 (0.47006).
        let e = pollster::block_on(d.evaluate()).expect("evaluate");
        let v = e.point_value.expect("judged at a point");
        assert!(
            (e.rel_l2 - (v - 0.47006).abs() / 0.47006).abs() < 1e-6,
            "{e:?}"
        );
    }
}
