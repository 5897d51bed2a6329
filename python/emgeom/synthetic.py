"""Synthetic cryo-EM specimens sampled at several magnifications with a known geometry.

A *master* image is a fine, noise-free model of a specimen area (holey carbon with edges and
texture, particles, contamination blobs, an optional grid bar, an ice-thickness gradient). An
*acquisition* samples the master at another pixel size, rotation and position through an
explicit affine map, with antialiasing when it is coarser than the master, then adds noise.
Nothing wraps around: every sampled position must lie inside the master (or is refused).

Geometry, for every :class:`Acquisition`: ``to_master`` is the 2×3 matrix ``T`` with
``[x_m, y_m] = T @ [x, y, 1]`` mapping an acquisition pixel ``(x, y)`` (x = column, y = row,
pixel centres on integer indices) to the master pixel it shows. Its linear part is
``k·R(θ)`` with ``k = pixel_a / master.pixel_a`` and ``R(θ) = [[cos θ, −sin θ], [sin θ, cos θ]]``.
:func:`affine_between` composes two acquisitions into the ground truth of an alignment.

Typical use (the issue-4 hole-edge scenario)::

    spec = make_specimen((4096, 4096), pixel_a=4.0, seed=1)
    view = acquire(spec, pixel_a=20.0, shape=(818, 818), noise_sigma=0.3, seed=2)
    prev = acquire(spec, pixel_a=2.0, shape=(1024, 1024), center=(2000.5, 2100.2),
                   rotation_deg=12.0, noise_sigma=1.5, seed=3)
    truth = affine_between(view, prev)      # [x_view, y_view] = truth @ [x_prev, y_prev, 1]
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from emgeom._validate import as_bool, as_float, as_int, as_matrix, as_shape2, check_alloc
from emgeom.errors import InvalidTypeError, InvalidValueError
from emgeom.resample import rescale, warp_affine

__all__ = [
    "Acquisition",
    "Specimen",
    "acquire",
    "affine_between",
    "compose_affine",
    "invert_affine",
    "make_specimen",
    "rotation_matrix",
]


def rotation_matrix(angle_deg: float) -> NDArray[np.float64]:
    """``R(θ) = [[cos θ, −sin θ], [sin θ, cos θ]]`` acting on ``(x, y)`` (y = row, down).

    With row 0 at the top, a positive θ turns the +x axis towards +y, i.e. clockwise as
    displayed (counter-clockwise in a y-up frame).
    """
    t = math.radians(as_float(angle_deg, "angle_deg"))
    c, s = math.cos(t), math.sin(t)
    return np.array([[c, -s], [s, c]])


def compose_affine(a: ArrayLike, b: ArrayLike) -> NDArray[np.float64]:
    """``a ∘ b`` for 2×3 affines (apply ``b`` first)."""
    am = as_matrix(a, "a", (2, 3), max_abs=1e100)
    bm = as_matrix(b, "b", (2, 3), max_abs=1e100)
    return np.hstack([am[:, :2] @ bm[:, :2], (am[:, :2] @ bm[:, 2] + am[:, 2])[:, None]])


def invert_affine(a: ArrayLike) -> NDArray[np.float64]:
    """Inverse of a 2×3 affine."""
    am = as_matrix(a, "a", (2, 3), max_abs=1e100)
    lin = am[:, :2]
    det = float(np.linalg.det(lin))
    scale = float(np.abs(lin).max())
    if scale == 0 or abs(det) <= 1e-12 * scale * scale:
        raise InvalidValueError(f"a: the linear part {lin.tolist()} is singular (det {det:.3g})")
    inv = np.linalg.inv(lin)
    out = np.hstack([inv, (-inv @ am[:, 2])[:, None]])
    if not np.isfinite(out).all():
        raise InvalidValueError(f"a: the inverse of {am.tolist()} overflows")
    return out


@dataclass(frozen=True)
class Specimen:
    """A noise-free master image.

    Attributes
    ----------
    image : ndarray, (y, x), float32
        Projected density-like contrast (carbon negative, vacuum/ice ≈ 0, particles negative).
    pixel_a : float
        Pixel size of the master in Å.
    hole_centers : ndarray, (n, 2)
        Hole centres ``(x, y)`` in master pixels.
    hole_radius_px : float
        Hole radius in master pixels.
    """

    image: NDArray[np.float32]
    pixel_a: float
    hole_centers: NDArray[np.float64]
    hole_radius_px: float


@dataclass(frozen=True)
class Acquisition:
    """One simulated image of a :class:`Specimen`.

    Attributes
    ----------
    image : ndarray, (y, x), float32
        The sampled image including noise.
    clean : ndarray, (y, x), float32
        The same without noise.
    pixel_a : float
        Pixel size in Å.
    to_master : ndarray, (2, 3)
        ``[x_m, y_m] = to_master @ [x, y, 1]`` (see the module docs).
    """

    image: NDArray[np.float32]
    clean: NDArray[np.float32]
    pixel_a: float
    to_master: NDArray[np.float64]

    @property
    def center(self) -> tuple[float, float]:
        """``(x, y)`` of the image centre pixel ``((nx − 1)/2, (ny − 1)/2)``."""
        ny, nx = self.image.shape
        return ((nx - 1) / 2.0, (ny - 1) / 2.0)


def affine_between(reference: Acquisition, moving: Acquisition) -> NDArray[np.float64]:
    """Ground truth ``A`` with ``[x_ref, y_ref] = A @ [x_mov, y_mov, 1]``."""
    return compose_affine(invert_affine(reference.to_master), moving.to_master)


def _smooth_noise(
    rng: np.random.Generator, shape: tuple[int, int], cell: int
) -> NDArray[np.float32]:
    """Smooth random field (unit-ish std): coarse Gaussian noise enlarged bilinearly."""
    ny, nx = shape
    cy, cx = ny // cell + 3, nx // cell + 3
    coarse = rng.standard_normal((cy, cx)).astype(np.float32)
    fine = rescale(coarse, (cell, cell), "bicubic", output_shape=(cy * cell, cx * cell))
    return np.ascontiguousarray(fine[cell : cell + ny, cell : cell + nx])


def _stamp(
    img: NDArray[np.float32], x: float, y: float, radius: float, kernel: str, amp: float
) -> None:
    """Add a blob centred at ``(x, y)``: Gaussian (σ = radius) or soft disk of that radius."""
    ny, nx = img.shape
    ext = math.ceil(3 * radius + 2) if kernel == "gauss" else math.ceil(radius + 4)
    x0, x1 = max(0, int(x) - ext), min(nx, int(x) + ext + 1)
    y0, y1 = max(0, int(y) - ext), min(ny, int(y) + ext + 1)
    if x0 >= x1 or y0 >= y1:
        return
    yy, xx = np.ogrid[y0:y1, x0:x1]
    r2 = (xx - x) ** 2 + (yy - y) ** 2
    if kernel == "gauss":
        blob = np.exp(-r2 / (2 * radius * radius))
    else:
        blob = np.clip(radius + 0.5 - np.sqrt(r2), 0.0, 1.0)
    img[y0:y1, x0:x1] += (amp * blob).astype(np.float32)


def make_specimen(
    shape: tuple[int, int] = (2048, 2048),
    pixel_a: float = 4.0,
    *,
    seed: int = 0,
    holes: str = "edge",
    hole_diameter_a: float = 12000.0,
    hole_pitch_a: float | None = None,
    carbon: float = -0.5,
    carbon_texture: float = 0.08,
    n_particles: int = 2500,
    particle_sigma_a: float = 24.0,
    particle_amplitude: float = -0.15,
    n_contamination: int = 12,
    grid_bar: bool = False,
    ice_gradient: float = 0.1,
) -> Specimen:
    """Build a master specimen image.

    Parameters
    ----------
    shape : (ny, nx)
        Master size in pixels.
    pixel_a : float
        Master pixel size in Å (should be at least as fine as the finest acquisition that
        must be realistic; finer acquisitions are interpolated).
    seed : int
        Random seed (everything is deterministic given the seed).
    holes : {"edge", "lattice", "none"}
        ``"edge"``: one hole whose edge crosses the field near the centre (distinct features);
        ``"lattice"``: a square lattice of holes of pitch ``hole_pitch_a`` (periodic,
        ambiguous); ``"none"``: continuous carbon.
    hole_diameter_a, hole_pitch_a : float
        Hole diameter and lattice pitch in Å (pitch default 2 × diameter).
    carbon : float
        Contrast of the carbon film (holes/vacuum are 0 before ice).
    carbon_texture : float
        Std of the smooth texture on the carbon.
    n_particles, particle_sigma_a, particle_amplitude :
        Gaussian particles (σ in Å) placed uniformly at random, amplitude per particle.
    n_contamination : int
        Large dark blobs (ice contamination), radius 150–600 Å.
    grid_bar : bool
        Add a very dark grid bar along one side.
    ice_gradient : float
        Amplitude of a linear ice-thickness gradient across the field (darker to one side).

    Returns
    -------
    Specimen
    """
    ny, nx = as_shape2(shape, "shape")
    check_alloc(ny * nx, 32, "shape", shape=(ny, nx))  # ~8 float32 working images
    px = as_float(pixel_a, "pixel_a", positive=True)
    if not isinstance(holes, str) or holes not in ("edge", "lattice", "none"):
        raise InvalidValueError(f"holes: expected 'edge', 'lattice' or 'none', got {holes!r}")
    rng = np.random.default_rng(as_int(seed, "seed", low=0))
    radius = as_float(hole_diameter_a, "hole_diameter_a", positive=True) / 2 / px
    if radius > 1e7:
        raise InvalidValueError(
            f"hole_diameter_a: {hole_diameter_a:g} Å is {2 * radius:.3g} px at pixel_a = {px:g}; "
            "expected at most 2e7 px"
        )
    n_particles = as_int(n_particles, "n_particles", low=0, high=10_000_000)
    n_contamination = as_int(n_contamination, "n_contamination", low=0, high=100_000)
    sigma_a = as_float(particle_sigma_a, "particle_sigma_a", positive=True)
    if sigma_a / px > max(ny, nx):
        raise InvalidValueError(
            f"particle_sigma_a: {sigma_a:g} Å is {sigma_a / px:.3g} px, larger than the image"
        )
    particle_amplitude = as_float(particle_amplitude, "particle_amplitude", low=-1e6, high=1e6)
    carbon = as_float(carbon, "carbon", low=-1e6, high=1e6)
    carbon_texture = as_float(carbon_texture, "carbon_texture", low=-1e6, high=1e6)
    ice_gradient = as_float(ice_gradient, "ice_gradient", low=-1e6, high=1e6)
    as_bool(grid_bar, "grid_bar")
    centers = _hole_centers(rng, holes, (ny, nx), radius, px, hole_pitch_a)
    inside = _hole_mask(centers, radius, (ny, nx))
    img = _film_and_ice(rng, inside, carbon, carbon_texture, ice_gradient)
    _add_blobs(img, rng, px, n_particles, sigma_a / px, particle_amplitude, n_contamination)
    if grid_bar:
        w = max(4, nx // 12)
        img[:, :w] += np.float32(-2.0)
    return Specimen(
        image=np.ascontiguousarray(img, dtype=np.float32),
        pixel_a=px,
        hole_centers=np.array(centers, dtype=np.float64).reshape(-1, 2),
        hole_radius_px=radius,
    )


def _hole_centers(
    rng: np.random.Generator,
    holes: str,
    shape: tuple[int, int],
    radius: float,
    px: float,
    hole_pitch_a: float | None,
) -> list[tuple[float, float]]:
    """Hole centres ``(x, y)`` (master px) of the ``holes`` layout (see :func:`make_specimen`)."""
    ny, nx = shape
    centers: list[tuple[float, float]] = []
    if holes == "edge":
        ang = rng.uniform(0, 2 * math.pi)
        # centre the hole so that its edge passes near the middle of the field
        d = radius * rng.uniform(0.85, 1.0)
        centers.append(((nx - 1) / 2 + d * math.cos(ang), (ny - 1) / 2 + d * math.sin(ang)))
    elif holes == "lattice":
        pitch = (
            2 * radius
            if hole_pitch_a is None
            else as_float(hole_pitch_a, "hole_pitch_a", positive=True) / px
        )
        n_holes = (ny / pitch + 3) * (nx / pitch + 3)
        if n_holes > 1e6:
            what = "hole_diameter_a" if hole_pitch_a is None else "hole_pitch_a"
            raise InvalidValueError(
                f"{what}: a lattice pitch of {pitch:.3g} px puts {n_holes:.3g} holes in the "
                "image; expected at most 1e6"
            )
        ox, oy = rng.uniform(0, pitch, size=2)
        for cy in np.arange(oy - pitch, ny + pitch, pitch):
            for cx in np.arange(ox - pitch, nx + pitch, pitch):
                centers.append((float(cx), float(cy)))
    return centers


def _hole_mask(
    centers: list[tuple[float, float]], radius: float, shape: tuple[int, int]
) -> NDArray[np.float32]:
    """1 inside the holes, 0 on the film, with a 1 px soft edge (``(ny, nx)`` float32)."""
    ny, nx = shape
    inside = np.zeros((ny, nx), dtype=np.float32)
    for cx, cy in centers:
        # soft-edged disk (1 px ramp), computed in its bounding box only
        x0, x1 = max(0, int(cx - radius - 2)), min(nx, int(cx + radius + 3))
        y0, y1 = max(0, int(cy - radius - 2)), min(ny, int(cy + radius + 3))
        if x0 >= x1 or y0 >= y1:
            continue
        bx = np.arange(x0, x1, dtype=np.float32) - np.float32(cx)
        by = np.arange(y0, y1, dtype=np.float32) - np.float32(cy)
        r = np.sqrt(bx[None, :] ** 2 + by[:, None] ** 2)
        disk = np.clip(np.float32(radius + 1.0) - r, 0.0, 1.0)
        np.maximum(inside[y0:y1, x0:x1], disk, out=inside[y0:y1, x0:x1])
    return inside


def _film_and_ice(
    rng: np.random.Generator,
    inside: NDArray[np.float32],
    carbon: float,
    carbon_texture: float,
    ice_gradient: float,
) -> NDArray[np.float32]:
    """Textured carbon film outside the holes, ice (a gradient with gentle variation) inside."""
    ny, nx = inside.shape
    film = np.float32(carbon) + np.float32(carbon_texture) * _smooth_noise(rng, (ny, nx), 8)
    # ice thickness: gradient plus gentle variation, only inside holes
    gx, gy = rng.normal(size=2)
    norm = (math.hypot(gx, gy) or 1.0) * max(nx, ny)
    rx = (np.arange(nx, dtype=np.float32) - np.float32(nx / 2)) * np.float32(gx / norm)
    ry = (np.arange(ny, dtype=np.float32) - np.float32(ny / 2)) * np.float32(gy / norm)
    ice = np.float32(-ice_gradient) * (rx[None, :] + ry[:, None])
    ice -= np.float32(0.02) * _smooth_noise(rng, (ny, nx), 64)
    return np.asarray(film + inside * (ice - film), dtype=np.float32)


def _add_blobs(
    img: NDArray[np.float32],
    rng: np.random.Generator,
    px: float,
    n_particles: int,
    particle_sigma_px: float,
    particle_amplitude: float,
    n_contamination: int,
) -> None:
    """Add Gaussian particles and dark contamination disks (radius 150–600 Å) in place."""
    ny, nx = img.shape
    xs, ys = rng.uniform(0, nx, n_particles), rng.uniform(0, ny, n_particles)
    for x, y in zip(xs, ys, strict=True):
        _stamp(img, float(x), float(y), particle_sigma_px, "gauss", particle_amplitude)
    for _ in range(n_contamination):
        r = rng.uniform(150.0, 600.0) / px
        _stamp(img, rng.uniform(0, nx), rng.uniform(0, ny), r, "disk", -rng.uniform(0.4, 1.0))


def acquire(
    specimen: Specimen,
    *,
    pixel_a: float,
    shape: tuple[int, int],
    center: ArrayLike | None = None,
    rotation_deg: float = 0.0,
    noise_sigma: float = 0.0,
    seed: int = 0,
    allow_outside: bool = False,
) -> Acquisition:
    """Sample the master at another pixel size, rotation and position, then add noise.

    Parameters
    ----------
    specimen : Specimen
    pixel_a : float
        Pixel size of the acquisition in Å.
    shape : (ny, nx)
        Acquisition size.
    center : (x, y), optional
        Master pixel position of the acquisition's centre pixel ``((nx−1)/2, (ny−1)/2)``;
        default the master centre. Sub-pixel values are fine.
    rotation_deg : float
        θ of ``to_master``'s linear part ``k·R(θ)`` (degrees; see :func:`rotation_matrix`).
    noise_sigma : float
        Std of additive white Gaussian noise (same units as the master contrast).
    seed : int
        Noise seed.
    allow_outside : bool
        Sample positions outside the master are refused unless this is set (they then take the
        master mean).

    Returns
    -------
    Acquisition
    """
    if not isinstance(specimen, Specimen):
        raise InvalidTypeError(f"specimen: expected a Specimen, got {type(specimen).__name__}")
    p = as_float(pixel_a, "pixel_a", positive=True)
    ny, nx = as_shape2(shape, "shape")
    check_alloc(ny * nx, 16, "shape", shape=(ny, nx))  # clean, noisy and working images
    mny, mnx = specimen.image.shape
    c_m = (
        np.array([(mnx - 1) / 2, (mny - 1) / 2])
        if center is None
        else as_matrix(center, "center", (2,))
    )
    k = p / specimen.pixel_a
    rot = rotation_matrix(as_float(rotation_deg, "rotation_deg"))
    c_a = np.array([(nx - 1) / 2, (ny - 1) / 2])
    lin = k * rot
    to_master = np.hstack([lin, (c_m - lin @ c_a)[:, None]])
    corners = np.array([[0, 0], [nx - 1, 0], [0, ny - 1], [nx - 1, ny - 1]], dtype=np.float64)
    mc = corners @ lin.T + to_master[:, 2]
    margin = 0.5 * k
    as_bool(allow_outside, "allow_outside")
    if not allow_outside and (
        mc[:, 0].min() < -0.5 + margin
        or mc[:, 1].min() < -0.5 + margin
        or mc[:, 0].max() > mnx - 0.5 - margin
        or mc[:, 1].max() > mny - 0.5 - margin
    ):
        raise InvalidValueError(
            "acquire: the requested field extends outside the master image "
            f"(corners in master px: {np.round(mc, 1).tolist()}); use a larger master, "
            "another center, or allow_outside=True"
        )
    src = specimen.image
    sample_map = to_master
    if k > 1.25:
        # antialias: exact area shrink by 1/k, then bicubic rotation/sub-pixel placement;
        # master position m maps to shrunk position (m + 0.5)/k − 0.5
        z = 1.0 / k
        src = rescale(src, z, "area")
        sample_map = np.vstack([to_master[0] * z, to_master[1] * z])
        sample_map[:, 2] += 0.5 * z - 0.5
    clean = warp_affine(src, sample_map, (ny, nx), order=3)
    rng = np.random.default_rng(as_int(seed, "seed", low=0))
    noisy = clean
    sigma_n = as_float(noise_sigma, "noise_sigma", nonnegative=True, high=1e30)
    if sigma_n > 0:
        noisy = (clean + rng.normal(0.0, sigma_n, clean.shape)).astype(np.float32)
    return Acquisition(
        image=np.ascontiguousarray(noisy, dtype=np.float32),
        clean=np.ascontiguousarray(clean, dtype=np.float32),
        pixel_a=p,
        to_master=to_master,
    )
