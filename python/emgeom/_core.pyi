"""Type stubs of the native module ``emgeom._core`` (Rust, pyo3).

Each capability keeps its own section; the Python modules (``emgeom.resample``, ...) are the
public API and validate inputs before calling these.
"""

import numpy as np
from numpy.typing import NDArray

__version__: str

# --- resample (rust/bindings/resample.rs) ---------------------------------------------------

def warp_affine_f32(
    images: NDArray[np.float32],
    affine: NDArray[np.float64],
    output_shape: tuple[int, int],
    order: int,
    fill: float | None = None,
    n_threads: int | None = None,
    check_limit: float | None = None,
) -> NDArray[np.float32]: ...
def warp_affine_f64(
    images: NDArray[np.float64],
    affine: NDArray[np.float64],
    output_shape: tuple[int, int],
    order: int,
    fill: float | None = None,
    n_threads: int | None = None,
    check_limit: float | None = None,
) -> NDArray[np.float64]: ...

# --- common (rust/bindings/common.rs) -------------------------------------------------------

def _panic_in_kernel_for_tests() -> None: ...

# --- tilt (rust/bindings/tilt.rs) -------------------------------------------------------------

def particle_defocus_f32(
    positions: NDArray[np.float64],
    coeffs: NDArray[np.float64],
    out: NDArray[np.float32],
    n_threads: int | None = None,
) -> None: ...
def particle_defocus_f64(
    positions: NDArray[np.float64],
    coeffs: NDArray[np.float64],
    out: NDArray[np.float64],
    n_threads: int | None = None,
) -> None: ...
def project_f64(
    positions: NDArray[np.float64],
    rows: NDArray[np.float64],
    out: NDArray[np.float64],
    n_threads: int | None = None,
) -> None: ...

# --- crossmag (rust/bindings/crossmag.rs) -----------------------------------------------------

def rescale_separable_f32(
    image: NDArray[np.float32],
    output_shape: tuple[int, int],
    zoom: tuple[float, float],
    method: str,
    n_threads: int | None = None,
) -> NDArray[np.float32]: ...
def rescale_separable_f64(
    image: NDArray[np.float64],
    output_shape: tuple[int, int],
    zoom: tuple[float, float],
    method: str,
    n_threads: int | None = None,
) -> NDArray[np.float64]: ...
def rescale_fourier_f32(
    image: NDArray[np.float32],
    output_shape: tuple[int, int],
    n_threads: int | None = None,
) -> NDArray[np.float32]: ...
def correlate_f32(
    a: NDArray[np.float32],
    b: NDArray[np.float32],
    pad: tuple[int, int],
    taper: float,
    filter: tuple[float, float, float, float],
    method: str,
    n_peaks: int,
    min_sep: float,
    max_shift: float,
    return_map: bool,
    n_threads: int | None = None,
) -> tuple[
    NDArray[np.float64], NDArray[np.float64], tuple[float, float, int], NDArray[np.float32] | None
]: ...

class CrossmagReference:
    @property
    def pad(self) -> tuple[int, int]: ...
    @property
    def region(self) -> tuple[int, int]: ...

def crossmag_prepare(
    image: NDArray[np.float32],
    origin: tuple[int, int],
    region: tuple[int, int],
    pad: tuple[int, int],
    taper: float,
    filter: tuple[float, float, float, float],
    method: str,
    n_threads: int | None = None,
) -> CrossmagReference: ...
def crossmag_evaluate(
    reference: CrossmagReference,
    moving: NDArray[np.float32],
    affines: NDArray[np.float64],
    half: tuple[int, int],
    taper: float,
    allowed: tuple[int, int, int, int, float, float, float],
    n_peaks: int,
    min_sep: float,
    want_map: bool,
    score_affines: NDArray[np.float64],
    refine_ccc: bool = False,
    direct: tuple[float, float] | None = None,
    n_threads: int | None = None,
) -> tuple[
    list[tuple[NDArray[np.float64], tuple[float, float, int], float]], NDArray[np.float32] | None
]: ...
def crossmag_area_predict(
    fine: NDArray[np.float32],
    pose: tuple[float, float, float, float],
    center: tuple[float, float],
    box_: tuple[int, int, int, int],
    k: int,
    n_threads: int | None = None,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]: ...

# --- logpolar ---
def log_polar_f32(
    image: NDArray[np.float32],
    center: tuple[float, float],
    output_shape: tuple[int, int],
    r_min: float,
    r_max: float,
    order: int,
    n_threads: int | None = None,
) -> NDArray[np.float32]: ...
def log_polar_half_spectrum_f32(
    magnitude: NDArray[np.float32],
    nx: int,
    output_shape: tuple[int, int],
    r_min: float,
    r_max: float,
    order: int,
    emphasis: bool = False,
    n_threads: int | None = None,
) -> NDArray[np.float32]: ...
def fm_log_polar_f32(
    image: NDArray[np.float32],
    output_shape: tuple[int, int],
    r_min: float,
    r_max: float,
    order: int,
    taper_fraction: float,
    magnitude: str,
    emphasis: bool,
    n_threads: int | None = None,
) -> NDArray[np.float32]: ...
def dog_filter_f32(
    image: NDArray[np.float32],
    sigma_fine: float,
    sigma_coarse: float,
    n_threads: int | None = None,
) -> NDArray[np.float32]: ...

# --- hand ---
def ctf_tile_profiles(
    image: NDArray[np.float32],
    tile: int,
    step: int,
    n_bins: int,
    astig: float = 0.0,
    astig_angle_rad: float = 0.0,
    n_threads: int | None = None,
) -> tuple[NDArray[np.float32], NDArray[np.float64], NDArray[np.uint32]]: ...
def ctf_fit_defocus_1d(
    profiles: NDArray[np.float32],
    s_per_bin: float,
    wavelength_a: float,
    cs_a: float,
    amplitude_contrast: float,
    searches: NDArray[np.float64],
    df_step: float,
    n_threads: int | None = None,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]: ...
def ctf_score_curves(
    profiles: NDArray[np.float32],
    s_per_bin: float,
    wavelength_a: float,
    cs_a: float,
    amplitude_contrast: float,
    searches: NDArray[np.float64],
    df_start: NDArray[np.float64],
    df_step: float,
    n_steps: int,
    n_threads: int | None = None,
) -> NDArray[np.float64]: ...
def ctf_flatten_profile(
    profile: NDArray[np.float32], s_per_bin: float, wavelength_a: float, df_ref: float
) -> NDArray[np.float64]: ...

# --- ncc ---
def masked_ncc_f32(
    reference: NDArray[np.float32],
    reference_mask: NDArray[np.float32] | None,
    moving: NDArray[np.float32],
    moving_mask: NDArray[np.float32] | None,
    min_overlap: float,
    n_peaks: int,
    min_separation: float,
    n_threads: int | None = None,
) -> tuple[
    NDArray[np.float64],
    tuple[float, float, int],
    NDArray[np.float32],
    NDArray[np.float32],
    tuple[int, int],
]: ...
