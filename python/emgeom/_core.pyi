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
) -> NDArray[np.float32]: ...
def warp_affine_f64(
    images: NDArray[np.float64],
    affine: NDArray[np.float64],
    output_shape: tuple[int, int],
    order: int,
    fill: float | None = None,
    n_threads: int | None = None,
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
