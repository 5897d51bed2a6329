//! Tile-wise power spectra and 1-D CTF defocus fits (for defocus-handedness checks).
//!
//! Two kernels, both parallel with rayon and free of Python:
//!
//! * [`tile_profiles`]: split an image into overlapping square tiles, window each tile (cosine
//!   edge taper), take its power spectrum and average it in rings of constant *equiphase*
//!   squared frequency `s_eff = s·(1 + a·cos 2(φ − φ_a))` (`s = k²` in cycles²/px², `a` = the
//!   tilt's relative astigmatism `ΔfAst/(2·Δf)`, held per tilt), `n_bins` bins uniform in `s`
//!   from 0 to the Nyquist `s = 1/4`. Uniform bins in `k²` hold equal numbers of Fourier
//!   pixels, and Thon rings are (without Cs) periodic in `k²` with period `1/(λ·Δf)`.
//! * [`fit_defocus_1d`]: for each radial profile, subtract a smooth background (moving average
//!   over one Thon-ring period in `s` at the reference defocus), normalise by the moving RMS,
//!   and find the defocus maximising the normalised correlation with the oscillating part of
//!   `CTF² = sin²(χ + φ_A)`, i.e. `−cos(2χ(s) + 2φ_A)` with
//!   `χ(s) = π·λ·Δf·s − (π/2)·Cs·λ³·s²` and `φ_A = asin(amplitude contrast)`; grid search then
//!   golden-section refinement. This is the 1-D fit used by CTFFIND4/5 on rotational averages
//!   (Rohou & Grigorieff 2015) with the background removed as in ctfplotter's strip fits.
//!
//! A numpy reference of both lives in `python/emgeom/reference/ctf.py`.
//!
//! Files, by concern: `tiles` (the tiling, the window and the ring-binned tile power spectra),
//! `profile` (the optics and search types, the background-flattened profile and its CTF²
//! correlation score), `fit` (the argument checks, the grid and golden-section search of
//! [`fit_defocus_1d`] and the score grid of [`score_curves`]); `tests`.

mod fit;
mod profile;
mod tiles;

#[cfg(test)]
mod tests;

pub use fit::{fit_defocus_1d, score_curves};
pub use profile::{flatten_profile, Optics, Search};
pub use tiles::{tile_profiles, TileProfiles, Tiling};
