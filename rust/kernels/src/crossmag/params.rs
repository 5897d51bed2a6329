//! Parameters and results of the evaluation of search points.

use ndarray::Array2;

use crate::warp::Affine;
use crate::xcorr::{Allowed, MapStats};

/// One evaluated peak of a search point.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PeakEval {
    /// Sub-pixel position of the moving centre in region pixels.
    pub x: f64,
    pub y: f64,
    pub value: f32,
    /// Interpolated peak height (see [`crate::xcorr::Peak::value_interp`]).
    pub value_interp: f64,
    /// Pearson CCC of the filtered images over the patch footprint at the integer peak.
    pub ccc: f64,
    /// Fraction of the patch weight on valid reference pixels.
    pub overlap: f64,
}

/// Result of one search point.
pub struct PointResult {
    pub peaks: Vec<PeakEval>,
    pub stats: MapStats,
    /// Correlation map over the region `(wy, wx)` (only when requested).
    pub map: Option<Array2<f32>>,
    /// Σ of the patch mask weights (0 means an empty patch).
    pub mask_sum: f64,
}

/// Patch/search parameters shared by all points of a call.
#[derive(Clone, Debug)]
pub struct PatchParams {
    pub hy: usize,
    pub hx: usize,
    /// Width (moving-image pixels of the pre-shrunk image) of the soft mask ramp.
    pub taper: f64,
    pub allowed: Allowed,
    pub n_peaks: usize,
    pub min_sep: f64,
    /// The CCC is computed only over patch pixels that fall inside the moving image
    /// (mask above 0.05) for *every* one of these maps (typically the extremes of the search range), so
    /// that the scores of different search points are measured over the same footprint and are
    /// comparable. Empty = each point's own footprint.
    pub score_affines: Vec<Affine>,
    /// Known position `(x, y)` (region pixels) of the moving centre: skip the correlation and
    /// only hill-climb the CCC from there (used by the local refinement rounds).
    pub direct: Option<(f64, f64)>,
    /// Refine the best-scoring peak on the real-space CCC: its sub-pixel position and its
    /// CCC become those of the CCC maximum (3×3 neighbourhood, hill-climb, parabolas).
    pub refine_ccc: bool,
}
