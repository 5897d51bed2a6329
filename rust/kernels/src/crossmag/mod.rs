//! Cross-magnification alignment core: a prepared (filtered, Fourier-transformed) reference
//! search region, and the evaluation of many (scale, rotation) search points against it in
//! parallel, each re-warping only the small moving patch.
//!
//! Geometry of one evaluation (all at the correlation sampling):
//! * The reference region is a `(wy, wx)` crop of the (binned) reference starting at integer
//!   `(x0, y0)` (it may extend past the image; those pixels have zero weight). It is tapered
//!   (cosine ramps at the edges of its valid part), made zero-mean and zero-padded to `(py, px)`
//!   with `py ≥ wy + hy`, `px ≥ wx + hx` so that no wrap-around reaches a valid position.
//! * The moving patch has `(2hy+1, 2hx+1)` pixels; patch pixel `(i, j)` has offset
//!   `o = (j − hx, i − hy)` from the image of the moving centre and samples the (pre-shrunk)
//!   moving image at `A·(j, i, 1)` (bicubic). A soft validity mask (cosine ramp of `taper` px
//!   inside the moving image's border) weights it; the weighted mean is removed. The patch is
//!   placed in the padded frame by wrapping its offsets around `(0, 0)`.
//! * `C(d) = Σ_x R(x)·P(x − d)` is then maximal where the moving centre lies at region pixel `d`.
//! * Each peak is scored by the Pearson CCC between the filtered patch and the filtered
//!   reference over the patch footprint, and by the fraction of the patch weight that falls on
//!   valid reference pixels (SerialEM `ShiftManager.cpp : AutoAlign` weighs `CCC·frac^(1/6)`).
//!
//! Files, by concern: `reference` (the prepared reference region), `params` (parameters and
//! results of an evaluation), `patch` (the warped, soft-masked moving patch), `moments` (the
//! CCC moment sums, per instruction set), `evaluate` (one search point: correlation, peaks,
//! CCC scoring and hill-climb; all points in parallel).

mod evaluate;
mod moments;
mod params;
mod patch;
mod reference;

#[cfg(test)]
mod tests;

pub use evaluate::evaluate_points;
pub use params::{PatchParams, PeakEval, PointResult};
pub use reference::{prepare_reference, Reference};
