"""Cached synthetic scenes shared by the crossmag tests (built once per test session)."""

from __future__ import annotations

import math
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


def micrograph_pair(
    img: np.ndarray,
    rng: np.random.Generator,
    *,
    bin_: float = 4.0,
    size: int = 256,
    noise: tuple[float, float] = (0.5, 2.0),
    cal_error: bool = False,
    max_scale_err: float = 0.03,
    max_rot_err: float = 2.0,
) -> dict:
    """A two-magnification pair cut from a real micrograph ``img`` (the issue-12 protocol).

    Reference: ``img`` area-binned by ``bin_``. Moving: a ``size``² field of the full-resolution
    image at a random position (inside the image for any rotation) and random rotation (Keys
    bicubic), plus white noise of σ = U(noise)·σ(img). With ``cal_error`` the pixel size and
    rotation passed to ``align`` are wrong by up to ±``max_scale_err`` / ±``max_rot_err``°.
    Returns the images, the keyword arguments for ``align`` and the truth (centre in reference
    px, scale = 1/bin_, rotation).
    """
    from emgeom import resample

    ny, nx = img.shape
    r = size * math.sqrt(0.5) + 2
    c = np.array([rng.uniform(r, nx - 1 - r), rng.uniform(r, ny - 1 - r)])
    rot = float(rng.uniform(-180.0, 180.0))
    lin = syn.rotation_matrix(rot)
    c_mov = np.array([(size - 1) / 2, (size - 1) / 2])
    a = np.hstack([lin, (c - lin @ c_mov)[:, None]])
    mov = resample.warp_affine(img, a, (size, size), order=3)
    sig = float(rng.uniform(*noise)) * float(img.std())
    mov = (mov + rng.normal(0.0, sig, mov.shape)).astype(np.float32)
    ref = resample.rescale(img, 1.0 / bin_, "area").astype(np.float32)
    se = float(rng.uniform(-max_scale_err, max_scale_err)) if cal_error else 0.0
    re = float(rng.uniform(-max_rot_err, max_rot_err)) if cal_error else 0.0
    kw = {
        "reference_pixel_a": float(bin_),
        "moving_pixel_a": 1.0 * (1.0 + se),
        "rotation_deg": rot + re,
    }
    truth = {"center": (c + 0.5) / bin_ - 0.5, "scale": 1.0 / bin_, "rotation_deg": rot}
    return {"reference": ref, "moving": mov, "kw": kw, "truth": truth, "noise": sig}


def pair_errors(res, truth: dict) -> tuple[float, float, float]:
    """(centre error in reference px, relative scale error, rotation error in degrees)."""
    d = float(np.hypot(*(np.asarray(res.center) - truth["center"])))
    ds = res.scale / truth["scale"] - 1.0
    dr = (res.rotation_deg - truth["rotation_deg"] + 180.0) % 360.0 - 180.0
    return d, float(ds), float(dr)


def similarity_pair(
    img: np.ndarray,
    scale: float,
    rot: float,
    n: int = 320,
    snr: float | None = None,
    seed: int = 0,
    other: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A ``find_similarity`` pair cut from ``img``: reference = the central ``n``² crop;
    moving = ``img`` (or the unrelated ``other``) sampled through a known similarity (moving
    px → image px: ``scale·R(rot)`` about the crop centre plus a random shift of ±15 px), Keys
    bicubic; with ``snr``, white noise of variance σ²(image)/snr on both. Returns
    ``(reference, moving, truth)`` with ``[x_ref, y_ref] = truth @ [x_mov, y_mov, 1]``.
    """
    from emgeom import resample

    rng = np.random.default_rng(seed)
    ny, nx = img.shape
    c = np.array([(nx - 1) / 2, (ny - 1) / 2])
    o = np.round(c - (n - 1) / 2).astype(int)
    ref = img[o[1] : o[1] + n, o[0] : o[0] + n].copy()
    lin = scale * syn.rotation_matrix(rot)
    c_m = np.array([(n - 1) / 2, (n - 1) / 2])
    t = np.hstack([lin, (c + rng.uniform(-15, 15, 2) - lin @ c_m)[:, None]])
    mov = resample.warp_affine(img if other is None else other, t, (n, n), order=3)
    truth = t.copy()
    truth[:, 2] -= o
    if snr is not None:
        ref = ref + rng.normal(0, ref.std() / math.sqrt(snr), ref.shape).astype(np.float32)
        mov = mov + rng.normal(0, mov.std() / math.sqrt(snr), mov.shape).astype(np.float32)
    return ref, mov, truth
