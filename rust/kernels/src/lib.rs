//! Pure-Rust numerical kernels of emgeom.
//!
//! Nothing in this crate knows about Python: every kernel works on `ndarray` views and plain
//! numbers, validates its own preconditions (returning [`KernelError`] rather than panicking),
//! and can be tested with `cargo test -p emgeom-kernels`. The pyo3 shims live in
//! `rust/bindings/` and only convert arrays, release the GIL and map errors.
//!
//! Conventions shared by all kernels: images are row-major `(y, x)` arrays (`y` = row = slow
//! axis, `x` = column = fast axis); coordinates and vectors are `(x, y[, z])`; pixel centres sit
//! on integer indices.

pub mod crossmag;
pub mod crossmag_refine;
pub mod ctf;
pub mod defocus;
pub mod error;
pub mod fft;
pub mod highpass;
pub mod interp;
pub mod logpolar;
pub mod ncc;
pub mod parallel;
pub mod rescale;
pub mod simd;
pub mod warp;
pub mod window;
pub mod xcorr;

pub use error::KernelError;
pub use simd::Isa;
