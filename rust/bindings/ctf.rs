//! Shims for `emgeom_kernels::ctf` (tile power spectra and 1-D CTF defocus fits), used by
//! `emgeom.tilt.check_hand(images=...)`. Validation with user-facing messages happens in Python.

use emgeom_kernels::ctf::{self, Optics, Search, Tiling};
use emgeom_kernels::KernelError;
use numpy::{IntoPyArray, PyArray1, PyArray2, PyReadonlyArray1, PyReadonlyArray2};
use pyo3::prelude::*;

use crate::common::{kernel_error, run_detached, run_parallel};

type Profiles<'py> = (
    Bound<'py, PyArray2<f32>>,
    Bound<'py, PyArray2<f64>>,
    Bound<'py, PyArray1<u32>>,
);

/// `(defocus_a (n,), score (n,))` of [`ctf_fit_defocus_1d`].
type DefocusFit<'py> = (Bound<'py, PyArray1<f64>>, Bound<'py, PyArray1<f64>>);

/// Tiling of an image (`ctf::Tiling`): `tile` edge (px, even, ≥ 16), `step` between tile
/// origins (px), `n_bins` radial bins (uniform in k²), relative astigmatism `astig` and its
/// angle `astig_angle_rad` (radians from +x towards +y) of the equiphase mapping.
#[pyclass(frozen, from_py_object, module = "emgeom._core", get_all)]
#[derive(Clone, Copy)]
struct CtfTiling {
    tile: usize,
    step: usize,
    n_bins: usize,
    astig: f64,
    astig_angle_rad: f64,
}

#[pymethods]
impl CtfTiling {
    #[new]
    #[pyo3(signature = (*, tile, step, n_bins, astig=0.0, astig_angle_rad=0.0))]
    fn new(tile: usize, step: usize, n_bins: usize, astig: f64, astig_angle_rad: f64) -> Self {
        CtfTiling {
            tile,
            step,
            n_bins,
            astig,
            astig_angle_rad,
        }
    }
}

/// A defocus search over profiles (`ctf::Optics` and one `ctf::Search` per profile):
/// `s_per_bin` (Å⁻² per bin), wavelength λ, Cs (Å), amplitude contrast, the `searches` `(n, 5)`
/// rows `s_lo, s_hi (Å⁻²), df_min, df_max, df_ref (Å)` and the defocus step `df_step` (Å).
#[pyclass(frozen, module = "emgeom._core")]
struct DefocusSearch {
    #[pyo3(get)]
    s_per_bin: f64,
    #[pyo3(get)]
    df_step: f64,
    optics: Optics,
    searches: Vec<Search>,
}

#[pymethods]
impl DefocusSearch {
    #[new]
    #[pyo3(signature = (searches, *, s_per_bin, wavelength_a, cs_a, amplitude_contrast, df_step))]
    fn new(
        searches: PyReadonlyArray2<'_, f64>,
        s_per_bin: f64,
        wavelength_a: f64,
        cs_a: f64,
        amplitude_contrast: f64,
        df_step: f64,
    ) -> PyResult<Self> {
        let s = searches.as_array();
        if s.ncols() != 5 {
            let e = KernelError::shape("searches", "(n, 5)", format!("{:?}", s.dim()));
            return Err(kernel_error(searches.py(), e));
        }
        let searches = s
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
        Ok(DefocusSearch {
            s_per_bin,
            df_step,
            optics: Optics {
                wavelength_a,
                cs_a,
                amplitude_contrast,
            },
            searches,
        })
    }
}

/// Radial (k²-uniform, astigmatism-equiphase) power-spectrum profiles of overlapping tiles.
/// Returns `(profiles (n_tiles, n_bins) f32, centres (n_tiles, 2) px from the image centre,
/// counts per bin)`.
#[pyfunction]
#[pyo3(signature = (image, tiling, *, n_threads=None))]
fn ctf_tile_profiles<'py>(
    py: Python<'py>,
    image: PyReadonlyArray2<'py, f32>,
    tiling: CtfTiling,
    n_threads: Option<usize>,
) -> PyResult<Profiles<'py>> {
    let img = image.as_array();
    let t = Tiling {
        tile: tiling.tile,
        step: tiling.step,
        n_bins: tiling.n_bins,
        astig: tiling.astig,
        astig_angle: tiling.astig_angle_rad,
    };
    let (p, c, counts) = run_parallel(py, n_threads, move || ctf::tile_profiles(img, t))?;
    Ok((
        p.into_pyarray(py),
        c.into_pyarray(py),
        counts.into_pyarray(py),
    ))
}

/// Best defocus and score of every profile: `(defocus_a (n,), score (n,))`.
#[pyfunction]
#[pyo3(signature = (profiles, search, *, n_threads=None))]
fn ctf_fit_defocus_1d<'py>(
    py: Python<'py>,
    profiles: PyReadonlyArray2<'py, f32>,
    search: &Bound<'py, DefocusSearch>,
    n_threads: Option<usize>,
) -> PyResult<DefocusFit<'py>> {
    let p = profiles.as_array();
    let s = search.get();
    let (d, sc) = run_parallel(py, n_threads, move || {
        ctf::fit_defocus_1d(p, s.s_per_bin, s.optics, &s.searches, s.df_step)
    })?;
    Ok((d.into_pyarray(py), sc.into_pyarray(py)))
}

/// Score of every profile on a defocus grid `df_start[i] + k·df_step` (`k < n_steps`); the
/// df_min/df_max of `search` are ignored.
#[pyfunction]
#[pyo3(signature = (profiles, search, *, df_start, n_steps, n_threads=None))]
fn ctf_score_curves<'py>(
    py: Python<'py>,
    profiles: PyReadonlyArray2<'py, f32>,
    search: &Bound<'py, DefocusSearch>,
    df_start: PyReadonlyArray1<'py, f64>,
    n_steps: usize,
    n_threads: Option<usize>,
) -> PyResult<Bound<'py, PyArray2<f64>>> {
    let p = profiles.as_array();
    let d = df_start.as_array();
    let s = search.get();
    let out = run_parallel(py, n_threads, move || {
        let starts: Vec<f64> = d.iter().copied().collect();
        let (spb, step) = (s.s_per_bin, s.df_step);
        ctf::score_curves(p, spb, s.optics, &s.searches, &starts, step, n_steps)
    })?;
    Ok(out.into_pyarray(py))
}

/// The background-subtracted, RMS-normalised profile the fit correlates (for tests/plots).
#[pyfunction]
#[pyo3(signature = (profile, *, s_per_bin, wavelength_a, df_ref))]
fn ctf_flatten_profile<'py>(
    py: Python<'py>,
    profile: PyReadonlyArray1<'py, f32>,
    s_per_bin: f64,
    wavelength_a: f64,
    df_ref: f64,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let v = profile.as_array();
    let out = run_detached(py, move || {
        let v: Vec<f32> = v.iter().copied().collect();
        Ok(ctf::flatten_profile(&v, s_per_bin, wavelength_a, df_ref))
    })?;
    Ok(out.into_pyarray(py))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(ctf_tile_profiles, m)?)?;
    m.add_function(wrap_pyfunction!(ctf_fit_defocus_1d, m)?)?;
    m.add_function(wrap_pyfunction!(ctf_flatten_profile, m)?)?;
    m.add_function(wrap_pyfunction!(ctf_score_curves, m)?)?;
    m.add_class::<CtfTiling>()?;
    m.add_class::<DefocusSearch>()?;
    Ok(())
}
