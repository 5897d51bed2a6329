"""Cached synthetic scenes shared by the crossmag tests (built once per test session)."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from emgeom import synthetic as syn


@lru_cache(maxsize=4)
def master(kind: str = "edge", seed: int = 1) -> syn.Specimen:
    """Design §7 master: 4096² at 4 Å/px (hole edge through the centre)."""
    return syn.make_specimen((4096, 4096), pixel_a=4.0, seed=seed, holes=kind)


@lru_cache(maxsize=8)
def view(kind: str = "edge", seed: int = 1, noise: float = 0.3, vseed: int = 2) -> syn.Acquisition:
    """A 20 Å/px View (818², the whole master) of :func:`master`."""
    return syn.acquire(
        master(kind, seed), pixel_a=20.0, shape=(818, 818), noise_sigma=noise, seed=vseed
    )


def preview(
    rng: np.random.Generator,
    *,
    kind: str = "edge",
    seed: int = 1,
    noise: float = 1.5,
    rotation_deg: float = 12.0,
    pixel_a: float = 2.0,
    shape: tuple[int, int] = (1024, 1024),
    spread_px: float = 200.0,
) -> syn.Acquisition:
    """A Preview at a random position within ±spread_px master px of the master centre."""
    m = master(kind, seed)
    c = np.array([2047.5, 2047.5]) + rng.uniform(-spread_px, spread_px, 2)
    return syn.acquire(
        m,
        pixel_a=pixel_a,
        shape=shape,
        center=c,
        rotation_deg=rotation_deg,
        noise_sigma=noise,
        seed=int(rng.integers(1 << 30)),
    )


def true_center(ref: syn.Acquisition, mov: syn.Acquisition) -> np.ndarray:
    a = syn.affine_between(ref, mov)
    return a[:, :2] @ np.array(mov.center) + a[:, 2]
