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
