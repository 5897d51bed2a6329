"""Type stubs of the native module ``emgeom._core`` (Rust, pyo3): the contract of the binding
boundary, checked against the compiled module by ``python -m mypy.stubtest emgeom._core``
(``make lint``).

One section per kernel module, named after the binding file that wraps it
(``rust/bindings/<kernel>.rs``). One function per operation: where float32 and float64 are both
accepted, the output has the input's dtype (overloads). Options are keyword-only; modes are
``Literal``; parameter and result types are frozen classes that mirror the kernel's structs.

Threads and the GIL: every array function releases the GIL while the kernel runs, so calls from
several Python threads run in parallel; ``n_threads=None`` uses the global pool (all cores), an
integer ``n`` runs that call on ``n`` worker threads. Errors: a kernel's argument error raises
``emgeom.errors.InvalidValueError``, a kernel panic ``emgeom.errors.InternalError``. The Python
modules (``emgeom.resample``, ...) are the public API and validate inputs before calling these.
"""

from typing import Literal, final, overload

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "AllowedRegion",
    "Bandpass",
    "CorrelationSetup",
    "CrossmagReference",
    "CtfTiling",
    "DefocusSearch",
    "LogPolarGrid",
    "MaskedNcc",
    "PatchSearch",
    "PeakSearch",
    "PointEval",
    "Pose",
    "Translation",
    "__version__",
    "_panic_in_kernel_for_tests",
    "correlate",
    "crossmag_area_predict",
    "crossmag_area_predict_stack",
    "crossmag_evaluate",
    "crossmag_prepare",
    "ctf_fit_defocus_1d",
    "ctf_flatten_profile",
    "ctf_score_curves",
    "ctf_tile_profiles",
    "dog_filter",
    "fm_log_polar",
    "log_polar",
    "log_polar_half_spectrum",
    "masked_gaussian_highpass",
    "masked_ncc",
    "particle_defocus",
    "project",
    "rescale_fourier",
    "rescale_separable",
    "warp_affine",
]

__version__: str

_Order = Literal[1, 3]  # interpolation order: 1 bilinear, 3 bicubic (Keys, a = -0.5)

# --- common (rust/bindings/common.rs) -------------------------------------------------------

def _panic_in_kernel_for_tests() -> None: ...

# --- warp (rust/bindings/warp.rs) -----------------------------------------------------------

@overload
def warp_affine(  # type: ignore[overload-overlap]  # NDArray dtypes overlap for mypy (as numpy's own stubs)
    images: NDArray[np.float32],
    affine: NDArray[np.float64],
    *,
    output_shape: tuple[int, int],
    order: _Order,
    fill: float | None = None,
    n_threads: int | None = None,
    check_limit: float | None = None,
) -> NDArray[np.float32]: ...
@overload
def warp_affine(
    images: NDArray[np.float64],
    affine: NDArray[np.float64],
    *,
    output_shape: tuple[int, int],
    order: _Order,
    fill: float | None = None,
    n_threads: int | None = None,
    check_limit: float | None = None,
) -> NDArray[np.float64]: ...

# --- rescale (rust/bindings/rescale.rs) -----------------------------------------------------

@overload
def rescale_separable(  # type: ignore[overload-overlap]  # as for warp_affine
    image: NDArray[np.float32],
    *,
    output_shape: tuple[int, int],
    zoom: tuple[float, float],
    method: Literal["area", "lanczos3"],
    n_threads: int | None = None,
) -> NDArray[np.float32]: ...
@overload
def rescale_separable(
    image: NDArray[np.float64],
    *,
    output_shape: tuple[int, int],
    zoom: tuple[float, float],
    method: Literal["area", "lanczos3"],
    n_threads: int | None = None,
) -> NDArray[np.float64]: ...
def rescale_fourier(
    image: NDArray[np.float32],
    *,
    output_shape: tuple[int, int],
    n_threads: int | None = None,
) -> NDArray[np.float32]: ...

# --- defocus (rust/bindings/defocus.rs) -----------------------------------------------------

def particle_defocus(
    positions: NDArray[np.float64],
    coeffs: NDArray[np.float64],
    out: NDArray[np.float32] | NDArray[np.float64],
    *,
    n_threads: int | None = None,
) -> None: ...
def project(
    positions: NDArray[np.float64],
    rows: NDArray[np.float64],
    out: NDArray[np.float64],
    *,
    n_threads: int | None = None,
) -> None: ...

# --- xcorr (rust/bindings/xcorr.rs) ---------------------------------------------------------

@final
class Bandpass:
    """The IMOD band-pass of a correlation (cycles/pixel)."""

    def __new__(
        cls, *, sigma1: float, sigma2: float, radius1: float, radius2: float
    ) -> Bandpass: ...
    @property
    def sigma1(self) -> float: ...
    @property
    def sigma2(self) -> float: ...
    @property
    def radius1(self) -> float: ...
    @property
    def radius2(self) -> float: ...

@final
class CorrelationSetup:
    """Both images tapered (``taper`` px) into a ``pad = (py, px)`` frame, correlated with
    ``method`` and band-passed by ``filter``.
    """

    def __new__(
        cls,
        *,
        pad: tuple[int, int],
        taper: float,
        filter: Bandpass,
        method: Literal["xcorr", "phase"],
    ) -> CorrelationSetup: ...
    @property
    def pad(self) -> tuple[int, int]: ...
    @property
    def taper(self) -> float: ...
    @property
    def filter(self) -> Bandpass: ...
    @property
    def method(self) -> Literal["xcorr", "phase"]: ...

@final
class PeakSearch:
    """The top ``n_peaks`` peaks at least ``min_separation`` map pixels apart."""

    def __new__(cls, *, n_peaks: int, min_separation: float) -> PeakSearch: ...
    @property
    def n_peaks(self) -> int: ...
    @property
    def min_separation(self) -> float: ...

@final
class AllowedRegion:
    """Map indices ``[x0, x1) × [y0, y1)`` and the disk of ``radius`` about ``(cx, cy)``
    (``None``, read back as ``-1.0``: no disk) where a peak may lie.
    """

    def __new__(
        cls,
        *,
        x0: int,
        x1: int,
        y0: int,
        y1: int,
        cx: float = 0.0,
        cy: float = 0.0,
        radius: float | None = None,
    ) -> AllowedRegion: ...
    @property
    def x0(self) -> int: ...
    @property
    def x1(self) -> int: ...
    @property
    def y0(self) -> int: ...
    @property
    def y1(self) -> int: ...
    @property
    def cx(self) -> float: ...
    @property
    def cy(self) -> float: ...
    @property
    def radius(self) -> float: ...

@final
class Translation:
    """The result of :func:`correlate`."""

    @property
    def peaks(self) -> NDArray[np.float64]:
        """``(k, 3)``: rows ``(dx, dy, value)``, best first."""
    @property
    def normalized(self) -> NDArray[np.float64]:
        """``(k,)``: peak values as a global normalised correlation in [−1, 1]."""
    @property
    def map_mean(self) -> float: ...
    @property
    def map_std(self) -> float: ...
    @property
    def map_count(self) -> int: ...
    @property
    def map(self) -> NDArray[np.float32] | None:
        """The correlation map (padded frame, zero displacement at (0, 0)), if requested."""

def correlate(
    a: NDArray[np.float32],
    b: NDArray[np.float32],
    setup: CorrelationSetup,
    peaks: PeakSearch,
    *,
    max_shift: float | None = None,
    return_map: bool = False,
    n_threads: int | None = None,
) -> Translation: ...

# --- crossmag (rust/bindings/crossmag.rs) ---------------------------------------------------

@final
class CrossmagReference:
    """A prepared reference search region (opaque)."""

    @property
    def pad(self) -> tuple[int, int]: ...
    @property
    def region(self) -> tuple[int, int]: ...

@final
class PatchSearch:
    """Patch/search parameters shared by all points of a :func:`crossmag_evaluate` call."""

    def __new__(
        cls,
        *,
        half: tuple[int, int],
        taper: float,
        allowed: AllowedRegion,
        peaks: PeakSearch,
        score_affines: NDArray[np.float64],
        refine_ccc: bool = False,
        direct: tuple[float, float] | None = None,
    ) -> PatchSearch: ...
    @property
    def half(self) -> tuple[int, int]: ...
    @property
    def refine_ccc(self) -> bool: ...
    @property
    def direct(self) -> tuple[float, float] | None: ...

@final
class PointEval:
    """One evaluated search point."""

    @property
    def peaks(self) -> NDArray[np.float64]:
        """``(k, 6)``: rows ``(x, y, value, ccc, overlap, value_interp)``, best first."""
    @property
    def map_mean(self) -> float: ...
    @property
    def map_std(self) -> float: ...
    @property
    def map_count(self) -> int: ...
    @property
    def mask_sum(self) -> float: ...

def crossmag_prepare(
    image: NDArray[np.float32],
    setup: CorrelationSetup,
    *,
    origin: tuple[int, int],
    region: tuple[int, int],
    n_threads: int | None = None,
) -> CrossmagReference: ...
def crossmag_evaluate(
    reference: CrossmagReference,
    moving: NDArray[np.float32],
    affines: NDArray[np.float64],
    search: PatchSearch,
    *,
    want_map: bool = False,
    n_threads: int | None = None,
) -> tuple[list[PointEval], NDArray[np.float32] | None]: ...

# --- crossmag_refine (rust/bindings/crossmag_refine.rs) -------------------------------------

@final
class Pose:
    """Pose of the fine image in the coarse one: ``(tx, ty)`` where the fine centre lands
    (coarse px), ``s`` coarse pixels per fine pixel, ``theta_rad`` radians.
    """

    def __new__(cls, *, tx: float, ty: float, s: float, theta_rad: float) -> Pose: ...
    @property
    def tx(self) -> float: ...
    @property
    def ty(self) -> float: ...
    @property
    def s(self) -> float: ...
    @property
    def theta_rad(self) -> float: ...

def crossmag_area_predict(
    fine: NDArray[np.float32],
    pose: Pose,
    *,
    center: tuple[float, float],
    box_: tuple[int, int, int, int],
    k: int,
    n_threads: int | None = None,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]: ...
def crossmag_area_predict_stack(
    images: NDArray[np.float32],
    pose: Pose,
    *,
    center: tuple[float, float],
    box_: tuple[int, int, int, int],
    k: int,
    derivs: tuple[bool, bool, bool, bool],
    n_threads: int | None = None,
) -> NDArray[np.float64]: ...

# --- highpass (rust/bindings/highpass.rs) ---------------------------------------------------

def masked_gaussian_highpass(
    stack: NDArray[np.float64],
    mask: NDArray[np.bool_],
    *,
    sigma: float,
    pad: tuple[int, int],
    n_threads: int | None = None,
) -> NDArray[np.float64]: ...

# --- ctf (rust/bindings/ctf.rs) -------------------------------------------------------------

@final
class CtfTiling:
    """Tiles of ``tile`` px every ``step`` px, ``n_bins`` radial bins (uniform in k²), relative
    astigmatism ``astig`` at ``astig_angle_rad``.
    """

    def __new__(
        cls,
        *,
        tile: int,
        step: int,
        n_bins: int,
        astig: float = 0.0,
        astig_angle_rad: float = 0.0,
    ) -> CtfTiling: ...
    @property
    def tile(self) -> int: ...
    @property
    def step(self) -> int: ...
    @property
    def n_bins(self) -> int: ...
    @property
    def astig(self) -> float: ...
    @property
    def astig_angle_rad(self) -> float: ...

@final
class DefocusSearch:
    """Optics and per-profile search rows ``(s_lo, s_hi [Å⁻²], df_min, df_max, df_ref [Å])``."""

    def __new__(
        cls,
        searches: NDArray[np.float64],
        *,
        s_per_bin: float,
        wavelength_a: float,
        cs_a: float,
        amplitude_contrast: float,
        df_step: float,
    ) -> DefocusSearch: ...
    @property
    def s_per_bin(self) -> float: ...
    @property
    def df_step(self) -> float: ...

def ctf_tile_profiles(
    image: NDArray[np.float32], tiling: CtfTiling, *, n_threads: int | None = None
) -> tuple[NDArray[np.float32], NDArray[np.float64], NDArray[np.uint32]]: ...
def ctf_fit_defocus_1d(
    profiles: NDArray[np.float32], search: DefocusSearch, *, n_threads: int | None = None
) -> tuple[NDArray[np.float64], NDArray[np.float64]]: ...
def ctf_score_curves(
    profiles: NDArray[np.float32],
    search: DefocusSearch,
    *,
    df_start: NDArray[np.float64],
    n_steps: int,
    n_threads: int | None = None,
) -> NDArray[np.float64]: ...
def ctf_flatten_profile(
    profile: NDArray[np.float32], *, s_per_bin: float, wavelength_a: float, df_ref: float
) -> NDArray[np.float64]: ...

# --- logpolar (rust/bindings/logpolar.rs) ---------------------------------------------------

@final
class LogPolarGrid:
    """Output ``(n_angle, n_radius)``, radii log-spaced over ``[r_min, r_max]``."""

    def __new__(
        cls, *, n_angle: int, n_radius: int, r_min: float, r_max: float
    ) -> LogPolarGrid: ...
    @property
    def n_angle(self) -> int: ...
    @property
    def n_radius(self) -> int: ...
    @property
    def r_min(self) -> float: ...
    @property
    def r_max(self) -> float: ...

def log_polar(
    image: NDArray[np.float32],
    grid: LogPolarGrid,
    *,
    center: tuple[float, float],
    order: _Order,
    n_threads: int | None = None,
) -> NDArray[np.float32]: ...
def log_polar_half_spectrum(
    magnitude: NDArray[np.float32],
    grid: LogPolarGrid,
    *,
    nx: int,
    order: _Order,
    emphasis: bool = False,
    n_threads: int | None = None,
) -> NDArray[np.float32]: ...
def fm_log_polar(
    image: NDArray[np.float32],
    grid: LogPolarGrid,
    *,
    order: _Order,
    taper_fraction: float,
    magnitude: Literal["abs", "log"],
    emphasis: bool,
    n_threads: int | None = None,
) -> NDArray[np.float32]: ...
def dog_filter(
    image: NDArray[np.float32],
    *,
    sigma_fine: float,
    sigma_coarse: float,
    n_threads: int | None = None,
) -> NDArray[np.float32]: ...

# --- ncc (rust/bindings/ncc.rs) -------------------------------------------------------------

@final
class MaskedNcc:
    """The result of :func:`masked_ncc`."""

    @property
    def peaks(self) -> NDArray[np.float64]:
        """``(k, 4)``: rows ``(dx, dy, ncc, overlap_fraction)``, best first."""
    @property
    def map_mean(self) -> float: ...
    @property
    def map_std(self) -> float: ...
    @property
    def n_valid(self) -> int: ...
    @property
    def ncc_map(self) -> NDArray[np.float32]: ...
    @property
    def overlap_map(self) -> NDArray[np.float32]: ...
    @property
    def origin(self) -> tuple[int, int]:
        """Map index ``(iy, ix)`` of zero displacement."""

def masked_ncc(
    reference: NDArray[np.float32],
    moving: NDArray[np.float32],
    peaks: PeakSearch,
    *,
    reference_mask: NDArray[np.float32] | None = None,
    moving_mask: NDArray[np.float32] | None = None,
    min_overlap: float,
    n_threads: int | None = None,
) -> MaskedNcc: ...
