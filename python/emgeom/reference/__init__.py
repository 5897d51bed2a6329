"""Slow, obviously-correct numpy implementations of the Rust kernels.

They exist so that tests can compare every Rust kernel with an independent implementation, and
so that a reader can see what a kernel computes without reading Rust. They are not meant to be
fast. Each function states which Rust kernel it mirrors.
"""

from __future__ import annotations

from emgeom.reference.interp import keys_kernel
from emgeom.reference.warp import warp_affine

# One module per kernel (``interp``, ``warp``, ``defocus``, ...); the two names here are the
# warp's, kept at their old place.
__all__ = ["keys_kernel", "warp_affine"]
