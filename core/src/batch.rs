//! `JetBatch`: a batch of jets for many points, directions and features, in the stacked-row layout
//! that every backend shares.
//!
//! # Layout
//!
//! A batch holds `n_points` points, each pushed along `n_dirs` directions as a jet of order `K`, for
//! `width` features. The primal value (coefficient 0) is shared by all directions of a point, so it is
//! stored once. Data are *blocks* of `n_points × width` values, row-major with the feature innermost:
//!
//! ```text
//! block 0                      primal          c_0            (shared by every direction)
//! block 1 + (k−1)·V + s        coefficient k   of direction s,  k = 1..=K (uncollapsed)
//! collapsed: blocks for k = 1..K−1 as above, then ONE block holding Σ_s c_K^s
//! value (block b, point n, feature h) at data[(b·n_points + n)·width + h]
//! ```
//!
//! Why this shape: every block is a `n_points × width` matrix, so a linear layer over all coefficients
//! is one matrix product on `n_blocks·n_points` stacked rows; and an elementwise jet kernel gives one
//! GPU thread a `(point, direction, feature)` triple whose coefficients sit `n_points·width` apart while
//! neighbouring threads read neighbouring features (coalesced). Coefficients are Taylor coefficients.
//!
//! The collapsed form keeps only the sum over directions of the top coefficient: every jet rule is
//! linear in its top input coefficient (`b_K = σ'(a_0)·a_K + R_K(a_0..a_{K−1})`), so the sum propagates
//! exactly while saving `V − 1` blocks in every layer.

/// Shape of a [`JetBatch`]: order, directions, points, features, and whether the top is collapsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct JetShape {
    /// Jet order `K ≥ 1`.
    pub order: usize,
    /// Directions per point `V ≥ 1`.
    pub n_dirs: usize,
    /// Points `N`.
    pub n_points: usize,
    /// Features per row.
    pub width: usize,
    /// Whether the top coefficient is stored as one sum over directions.
    pub collapsed: bool,
}

impl JetShape {
    /// Number of `n_points × width` blocks.
    pub fn n_blocks(&self) -> usize {
        if self.collapsed {
            1 + (self.order - 1) * self.n_dirs + 1
        } else {
            1 + self.order * self.n_dirs
        }
    }

    /// Number of stacked rows (`n_blocks · n_points`).
    pub fn n_rows(&self) -> usize {
        self.n_blocks() * self.n_points
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        self.n_rows() * self.width
    }

    /// Whether the batch holds no value.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Block index of coefficient `k` of direction `dir` (`k = 0` is the shared primal). In the
    /// collapsed form, `k = K` maps to the single summed block whatever `dir` is.
    ///
    /// # Panics
    /// If `k > K` or `dir ≥ n_dirs`.
    #[track_caller]
    pub fn block(&self, k: usize, dir: usize) -> usize {
        assert!(
            k <= self.order,
            "coefficient {k} above order {}",
            self.order
        );
        assert!(dir < self.n_dirs, "direction {dir} of {}", self.n_dirs);
        if k == 0 {
            0
        } else if self.collapsed && k == self.order {
            1 + (self.order - 1) * self.n_dirs
        } else {
            1 + (k - 1) * self.n_dirs + dir
        }
    }

    /// The same shape with another width.
    pub fn with_width(&self, width: usize) -> Self {
        Self { width, ..*self }
    }

    /// Flat index of (block, point, feature).
    #[inline]
    pub fn index(&self, block: usize, point: usize, feature: usize) -> usize {
        (block * self.n_points + point) * self.width + feature
    }

    #[track_caller]
    fn validate(&self) {
        assert!(
            self.order >= 1 || !self.collapsed,
            "a collapsed batch needs jet order at least 1"
        );
        assert!(self.n_dirs >= 1, "a jet batch needs at least one direction");
    }
}

/// An owned batch of jets (f64), layout as in the module documentation.
#[derive(Clone, Debug, PartialEq)]
pub struct JetBatch {
    shape: JetShape,
    data: Vec<f64>,
}

/// A borrowed, read-only view of a [`JetBatch`].
#[derive(Clone, Copy, Debug)]
pub struct JetBatchRef<'a> {
    shape: JetShape,
    data: &'a [f64],
}

/// A borrowed, mutable view of a [`JetBatch`].
#[derive(Debug)]
pub struct JetBatchMut<'a> {
    shape: JetShape,
    data: &'a mut [f64],
}

impl JetBatch {
    /// A batch of zeros.
    ///
    /// # Panics
    /// If the order or the number of directions is zero.
    #[track_caller]
    pub fn zeros(shape: JetShape) -> Self {
        shape.validate();
        Self {
            shape,
            data: vec![0.0; shape.len()],
        }
    }

    /// Wraps data laid out as described in the module documentation.
    ///
    /// # Panics
    /// If `data.len()` differs from `shape.len()`.
    #[track_caller]
    pub fn from_vec(shape: JetShape, data: Vec<f64>) -> Self {
        shape.validate();
        assert_eq!(
            data.len(),
            shape.len(),
            "data length does not match {shape:?}"
        );
        Self { shape, data }
    }

    /// The shape.
    pub fn shape(&self) -> JetShape {
        self.shape
    }

    /// The flat data.
    pub fn as_slice(&self) -> &[f64] {
        &self.data
    }

    /// The flat data, mutable.
    pub fn as_mut_slice(&mut self) -> &mut [f64] {
        &mut self.data
    }

    /// Consumes the batch into its flat data.
    pub fn into_vec(self) -> Vec<f64> {
        self.data
    }

    /// A read-only view.
    pub fn as_ref(&self) -> JetBatchRef<'_> {
        JetBatchRef {
            shape: self.shape,
            data: &self.data,
        }
    }

    /// A mutable view.
    pub fn as_mut(&mut self) -> JetBatchMut<'_> {
        JetBatchMut {
            shape: self.shape,
            data: &mut self.data,
        }
    }

    /// Value of coefficient `k` of direction `dir` for (point, feature).
    pub fn get(&self, k: usize, dir: usize, point: usize, feature: usize) -> f64 {
        self.as_ref().get(k, dir, point, feature)
    }

    /// Sets coefficient `k` of direction `dir` for (point, feature).
    pub fn set(&mut self, k: usize, dir: usize, point: usize, feature: usize, value: f64) {
        let i = self.shape.index(self.shape.block(k, dir), point, feature);
        self.data[i] = value;
    }
}

impl<'a> JetBatchRef<'a> {
    /// Wraps a slice.
    ///
    /// # Panics
    /// If `data.len()` differs from `shape.len()`.
    #[track_caller]
    pub fn new(shape: JetShape, data: &'a [f64]) -> Self {
        shape.validate();
        assert_eq!(
            data.len(),
            shape.len(),
            "data length does not match {shape:?}"
        );
        Self { shape, data }
    }

    /// The shape.
    pub fn shape(&self) -> JetShape {
        self.shape
    }

    /// The flat data.
    pub fn as_slice(&self) -> &'a [f64] {
        self.data
    }

    /// Value of coefficient `k` of direction `dir` for (point, feature).
    pub fn get(&self, k: usize, dir: usize, point: usize, feature: usize) -> f64 {
        self.data[self.shape.index(self.shape.block(k, dir), point, feature)]
    }

    /// The Taylor series `c_0..=c_K` of one (direction, point, feature). In the collapsed form the
    /// top entry is the sum over directions.
    pub fn series(&self, dir: usize, point: usize, feature: usize) -> Vec<f64> {
        (0..=self.shape.order)
            .map(|k| self.get(k, dir, point, feature))
            .collect()
    }

    /// Copies into an owned batch.
    pub fn to_owned(&self) -> JetBatch {
        JetBatch {
            shape: self.shape,
            data: self.data.to_vec(),
        }
    }
}

impl<'a> JetBatchMut<'a> {
    /// Wraps a mutable slice.
    ///
    /// # Panics
    /// If `data.len()` differs from `shape.len()`.
    #[track_caller]
    pub fn new(shape: JetShape, data: &'a mut [f64]) -> Self {
        shape.validate();
        assert_eq!(
            data.len(),
            shape.len(),
            "data length does not match {shape:?}"
        );
        Self { shape, data }
    }

    /// The shape.
    pub fn shape(&self) -> JetShape {
        self.shape
    }

    /// The flat data.
    pub fn as_mut_slice(&mut self) -> &mut [f64] {
        self.data
    }

    /// Sets coefficient `k` of direction `dir` for (point, feature).
    pub fn set(&mut self, k: usize, dir: usize, point: usize, feature: usize, value: f64) {
        let i = self.shape.index(self.shape.block(k, dir), point, feature);
        self.data[i] = value;
    }

    /// Adds to coefficient `k` of direction `dir` for (point, feature).
    pub fn add(&mut self, k: usize, dir: usize, point: usize, feature: usize, value: f64) {
        let i = self.shape.index(self.shape.block(k, dir), point, feature);
        self.data[i] += value;
    }
}
