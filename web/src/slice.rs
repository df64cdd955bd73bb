//! The heatmaps' data: a grid on the 2-D slice `(x₁, x₂, 0, …, 0)` of the unit ball, the exact
//! solution there, and the model there, evaluated in f64 on the host from downloaded parameters.

use serde::Serialize;
use stde_core::mlp::{Mlp, MlpShape};

/// Cells per side of the heatmaps.
pub const GRID: usize = 48;

/// Values on an `n × n` grid over `[−1, 1]²`, row-major with row 0 at the top (`x₂ = 1`), so that
/// the page draws row `j` at `y = j`. Cells whose centre lies outside the unit disk hold `None`
/// (`null` in JSON): the solution is only defined inside the ball.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Slice {
    /// Cells per side.
    pub n: usize,
    /// Steps completed when the network was read.
    pub step: u64,
    /// The network's `u_θ`.
    pub u: Vec<Option<f64>>,
    /// The exact `u*` (every cell `None` when the problem has no exact solution).
    pub exact: Vec<Option<f64>>,
    /// `u_θ − u*` (likewise).
    pub diff: Vec<Option<f64>>,
    /// Whether the problem has an exact solution.
    pub has_exact: bool,
}

/// The centres `(x₁, x₂)` of the grid's cells inside the unit disk, and each one's cell index.
pub fn disk_cells(n: usize) -> Vec<(usize, [f64; 2])> {
    let h = 2.0 / n as f64;
    let mut cells = Vec::new();
    for row in 0..n {
        for col in 0..n {
            let x1 = -1.0 + (col as f64 + 0.5) * h;
            let x2 = 1.0 - (row as f64 + 0.5) * h;
            if x1 * x1 + x2 * x2 < 1.0 {
                cells.push((row * n + col, [x1, x2]));
            }
        }
    }
    cells
}

/// The cells' points in `R^d` (row-major), zero beyond the first two coordinates.
pub fn embed(cells: &[(usize, [f64; 2])], dim: usize) -> Vec<f64> {
    let mut pts = vec![0.0; cells.len() * dim];
    for (p, (_, x)) in pts.chunks_exact_mut(dim).zip(cells) {
        p[..2].copy_from_slice(x);
    }
    pts
}

/// The network restricted to the slice: on points `(x₁, x₂, 0, …, 0)` the first layer only sees
/// columns 0 and 1 of `W₁`, so a two-input copy of the model gives the same values at `2/d` of the
/// cost (at `d = 10⁴` the full points would be 2304 × 10⁴ values).
///
/// # Panics
/// If `params` does not have the shape's parameter count.
#[track_caller]
pub fn restrict_to_slice(shape: &MlpShape, params: &[f32]) -> Mlp {
    assert_eq!(params.len(), shape.n_params(), "parameter count");
    let d = shape.dims[0];
    let width = shape.dims[1];
    let mut dims = shape.dims.clone();
    dims[0] = 2;
    let small = MlpShape {
        dims,
        activation: shape.activation,
    };
    let (w_off, b_off) = shape.offsets(0);
    let mut out = Vec::with_capacity(small.n_params());
    for r in 0..width {
        out.extend(
            params[w_off + r * d..w_off + r * d + 2]
                .iter()
                .map(|&p| f64::from(p)),
        );
    }
    out.extend(params[b_off..].iter().map(|&p| f64::from(p)));
    debug_assert_eq!(out.len(), small.n_params());
    Mlp {
        shape: small,
        params: out,
    }
}

/// Spreads values at the disk cells over the full grid.
pub fn to_grid(n: usize, cells: &[(usize, [f64; 2])], values: &[f64]) -> Vec<Option<f64>> {
    let mut grid = vec![None; n * n];
    for ((i, _), &v) in cells.iter().zip(values) {
        grid[*i] = Some(v);
    }
    grid
}

/// Builds a [`Slice`] from the network and exact values at the disk cells (`exact` is `None` for a
/// problem without an exact solution).
pub fn assemble(
    n: usize,
    step: u64,
    cells: &[(usize, [f64; 2])],
    u: &[f64],
    exact: Option<&[f64]>,
) -> Slice {
    let has_exact = exact.is_some();
    let (exact, diff) = match exact {
        Some(exact) => {
            let diff: Vec<f64> = u.iter().zip(exact).map(|(a, b)| a - b).collect();
            (to_grid(n, cells, exact), to_grid(n, cells, &diff))
        }
        None => (vec![None; n * n], vec![None; n * n]),
    };
    Slice {
        n,
        step,
        u: to_grid(n, cells, u),
        exact,
        diff,
        has_exact,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stde_core::mlp::Activation;

    #[test]
    fn restricted_model_matches_the_full_one_on_the_slice() {
        let shape = MlpShape::new(7, 5, 3, Activation::Tanh);
        let params: Vec<f32> = (0..shape.n_params())
            .map(|i| ((i as f32) * 0.37).sin() * 0.5)
            .collect();
        let full = Mlp {
            shape: shape.clone(),
            params: params.iter().map(|&p| f64::from(p)).collect(),
        };
        let cells = disk_cells(9);
        let want = full.eval(&embed(&cells, 7));
        let small: Vec<f64> = cells.iter().flat_map(|(_, x)| *x).collect();
        let got = restrict_to_slice(&shape, &params).eval(&small);
        assert_eq!(got.len(), want.len());
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!(
                (g - w).abs() <= 1e-12 * (1.0 + w.abs()),
                "cell {i}: {g} vs {w}"
            );
        }
    }

    #[test]
    fn grid_masks_the_outside_of_the_disk() {
        let n = 8;
        let cells = disk_cells(n);
        let grid = to_grid(n, &cells, &vec![1.0; cells.len()]);
        // Corners are outside, the centre is inside; row 0 is the top (x₂ > 0).
        assert_eq!(grid[0], None);
        assert_eq!(grid[n * n - 1], None);
        assert_eq!(grid[(n / 2) * n + n / 2], Some(1.0));
        assert!(cells.iter().all(|(i, x)| (*i / n < n / 2) == (x[1] > 0.0)));
    }
}
