//! Shims for `emgeom_kernels::ctf` (tile power spectra and 1-D CTF defocus fits), used by
//! `emgeom.tilt.check_hand(images=...)`. Validation with user-facing messages happens in Python.

use emgeom_kernels::ctf::{self, Optics, Search, Tiling};
use emgeom_kernels::parallel::with_threads;
use emgeom_kernels::KernelError;
use numpy::{IntoPyArray, PyArray1, PyArray2, PyReadonlyArray1, PyReadonlyArray2};
use pyo3::prelude::*;

use crate::common::run_detached;

type Profiles<'py> = (
    Bound<'py, PyArray2<f32>>,
    Bound<'py, PyArray2<f64>>,
    Bound<'py, PyArray1<u32>>,
);

/// Radial (k²-uniform, astigmatism-equiphase) power-spectrum profiles of overlapping tiles.
/// Returns `(profiles (n_tiles, n_bins) f32, centres (n_tiles, 2) px from the image centre,
/// counts per bin)`.
#[pyfunction]
#[pyo3(signature = (image, tile, step, n_bins, astig=0.0, astig_angle_rad=0.0, n_threads=None))]
#[allow(clippy::too_many_arguments)]
fn ctf_tile_profiles<'py>(
    py: Python<'py>,
    image: PyReadonlyArray2<'py, f32>,
    tile: usize,
    step: usize,
    n_bins: usize,
    astig: f64,
    astig_angle_rad: f64,
    n_threads: Option<usize>,
) -> PyResult<Profiles<'py>> {
    let img = image.as_array();
    let t = Tiling {
        tile,
        step,
        n_bins,
        astig,
        astig_angle: astig_angle_rad,
    };
    let (p, c, counts) = run_detached(py, move || {
        with_threads(n_threads, || ctf::tile_profiles(img, t))?
    })?;
    Ok((
        p.into_pyarray(py),
        c.into_pyarray(py),
        counts.into_pyarray(py),
    ))
}

/// Best defocus and score of every profile. `searches` is `(n, 5)`:
/// `s_lo, s_hi (Å⁻²), df_min, df_max, df_ref (Å)`.
#[pyfunction]
#[pyo3(signature = (profiles, s_per_bin, wavelength_a, cs_a, amplitude_contrast, searches, df_step, n_threads=None))]
#[allow(clippy::too_many_arguments)]
fn ctf_fit_defocus_1d<'py>(
    py: Python<'py>,
    profiles: PyReadonlyArray2<'py, f32>,
    s_per_bin: f64,
    wavelength_a: f64,
    cs_a: f64,
    amplitude_contrast: f64,
    searches: PyReadonlyArray2<'py, f64>,
    df_step: f64,
    n_threads: Option<usize>,
) -> PyResult<(Bound<'py, PyArray1<f64>>, Bound<'py, PyArray1<f64>>)> {
    let p = profiles.as_array();
    let s = searches.as_array();
    let optics = Optics {
        wavelength_a,
        cs_a,
        amplitude_contrast,
    };
    let (d, sc) = run_detached(py, move || {
        if s.ncols() != 5 {
            return Err(KernelError::shape(
                "searches",
                "(n, 5)",
                format!("{:?}", s.dim()),
            ));
        }
        let list: Vec<Search> = s
            .rows()
            .into_iter()
            .map(|r| Search {
                s_lo: r[0],
                s_hi: r[1],
                df_min: r[2],
                df_max: r[3],
                df_ref: r[4],
            })
            .collect();
        with_threads(n_threads, || {
            ctf::fit_defocus_1d(p, s_per_bin, optics, &list, df_step)
        })?
    })?;
    Ok((d.into_pyarray(py), sc.into_pyarray(py)))
}

/// Score of every profile on a defocus grid `df_start[i] + k·df_step` (`k < n_steps`);
/// `searches` as for `ctf_fit_defocus_1d` (its df_min/df_max columns are ignored).
#[pyfunction]
#[pyo3(signature = (profiles, s_per_bin, wavelength_a, cs_a, amplitude_contrast, searches, df_start, df_step, n_steps, n_threads=None))]
#[allow(clippy::too_many_arguments)]
fn ctf_score_curves<'py>(
    py: Python<'py>,
    profiles: PyReadonlyArray2<'py, f32>,
    s_per_bin: f64,
    wavelength_a: f64,
    cs_a: f64,
    amplitude_contrast: f64,
    searches: PyReadonlyArray2<'py, f64>,
    df_start: PyReadonlyArray1<'py, f64>,
    df_step: f64,
    n_steps: usize,
    n_threads: Option<usize>,
) -> PyResult<Bound<'py, PyArray2<f64>>> {
    let p = profiles.as_array();
    let s = searches.as_array();
    let d = df_start.as_array();
    let optics = Optics {
        wavelength_a,
        cs_a,
        amplitude_contrast,
    };
    let out = run_detached(py, move || {
        if s.ncols() != 5 {
            return Err(KernelError::shape(
                "searches",
                "(n, 5)",
                format!("{:?}", s.dim()),
            ));
        }
        let list: Vec<Search> = s
            .rows()
            .into_iter()
            .map(|r| Search {
                s_lo: r[0],
                s_hi: r[1],
                df_min: r[2],
                df_max: r[3],
                df_ref: r[4],
            })
            .collect();
        let starts: Vec<f64> = d.iter().copied().collect();
        with_threads(n_threads, || {
            ctf::score_curves(p, s_per_bin, optics, &list, &starts, df_step, n_steps)
        })?
    })?;
    Ok(out.into_pyarray(py))
}

/// The background-subtracted, RMS-normalised profile the fit correlates (for tests/plots).
#[pyfunction]
fn ctf_flatten_profile<'py>(
    py: Python<'py>,
    profile: PyReadonlyArray1<'py, f32>,
    s_per_bin: f64,
    wavelength_a: f64,
    df_ref: f64,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let v = profile.as_array().to_vec();
    let out = ctf::flatten_profile(&v, s_per_bin, wavelength_a, df_ref);
    Ok(out.into_pyarray(py))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(ctf_tile_profiles, m)?)?;
    m.add_function(wrap_pyfunction!(ctf_fit_defocus_1d, m)?)?;
    m.add_function(wrap_pyfunction!(ctf_flatten_profile, m)?)?;
    m.add_function(wrap_pyfunction!(ctf_score_curves, m)?)?;
    Ok(())
}
