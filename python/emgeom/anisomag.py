"""Anisotropic magnification: one value, every program's convention, and image correction.

The canonical form is the real-space matrix **D** with ``x_obs = D · x_true``: ``x = (column,
row)`` of the image as stored in the file, relative to the image centre, in nominal units (the
declared pixel size). :class:`AnisoMag` holds D immutably; its constructors and exports speak
each program's language (formulas and sources in :mod:`emgeom.conventions.anisomag` and
``docs/conventions.md``):

>>> from emgeom.anisomag import AnisoMag
>>> am = AnisoMag.from_cryosparc([[-0.00571369, -0.00932393], [-0.01013075, 0.00451204]])
>>> am.to_motioncor().as_args()
'-Mag 1.011726 0.989718 58.875'
>>> print(am.to_relion().round(6))
[[1.005842 0.009336]
 [0.010144 0.995602]]
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from emgeom import conventions, resample
from emgeom._validate import as_float, as_image, as_matrix, describe
from emgeom.conventions.anisomag import (
    CistemMag,
    MotionCorMag,
    Warp1PixelSize,
    stretch_axes,
)
from emgeom.errors import (
    ImplausibleValueWarning,
    InvalidTypeError,
    InvalidValueError,
    LossyConversionWarning,
)

__all__ = [
    "AnisoMag",
    "CistemMag",
    "MotionCorMag",
    "Warp1PixelSize",
    "convert",
    "correct",
    "distort",
]

#: Anisotropy above this (percent) is valid but implausible for a microscope: warn.
IMPLAUSIBLE_ANISOTROPY_PERCENT = 20.0
#: Singular values of D outside this range are not a magnification distortion: refuse.
SINGULAR_VALUE_RANGE = (0.25, 4.0)
#: Rotation parts below this (degrees) are ignored when exporting to symmetric-only formats.
NEGLIGIBLE_ROTATION_DEG = 0.05


def _validated_distortion(value: Any) -> NDArray[np.float64]:
    d = as_matrix(value, "distortion", (2, 2), max_abs=1e3)
    s = np.linalg.svd(d, compute_uv=False)
    lo, hi = SINGULAR_VALUE_RANGE
    if s[1] < lo or s[0] > hi:
        raise InvalidValueError(
            f"distortion: singular values {s[0]:.6g}, {s[1]:.6g} are outside [{lo}, {hi}]: not a "
            "magnification distortion. RELION MagMat and cryoSPARC I + M are close to the "
            "identity; did you pass cryoSPARC's stored M (identity subtracted) as a full matrix?"
        )
    det = float(np.linalg.det(d))
    if det <= 0:
        raise InvalidValueError(
            f"distortion: det(D) = {det:.6g} <= 0 is a reflection, not a magnification "
            "distortion; this happens when matrices from frames with opposite y direction are "
            "mixed (e.g. cryoSPARC Patch Motion vs MotionCor2 micrographs): use flip_y() on one "
            f"of them. Got D = {d.tolist()}"
        )
    aniso = 100.0 * (s[0] / s[1] - 1.0)
    if aniso > IMPLAUSIBLE_ANISOTROPY_PERCENT:
        warnings.warn(
            f"anisotropy {aniso:.1f} % exceeds {IMPLAUSIBLE_ANISOTROPY_PERCENT:.0f} %: "
            "implausible for a microscope (typical values are 0.5-3 %); check the input",
            ImplausibleValueWarning,
            stacklevel=4,
        )
    return d


class AnisoMag:
    """An anisotropic magnification distortion, immutable, in canonical form.

    Parameters
    ----------
    distortion : (2, 2) array_like
        D with ``x_obs = D · x_true``; x = column, y = row of the image as stored, relative to
        the image centre, nominal units. Must have det > 0 and singular values within
        [0.25, 4]; anisotropy above 20 % warns (:class:`~emgeom.errors.ImplausibleValueWarning`).

    Notes
    -----
    Use the ``from_*`` constructors for program values; ``AnisoMag(D)`` equals
    :meth:`from_matrix`.
    """

    __slots__ = ("_d",)
    _d: NDArray[np.float64]

    def __init__(self, distortion: ArrayLike) -> None:
        d = _validated_distortion(distortion)
        d.setflags(write=False)
        object.__setattr__(self, "_d", d)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("AnisoMag is immutable")

    def __reduce__(self) -> tuple[Any, ...]:
        return (AnisoMag, (self._d.tolist(),))

    # ------------------------------------------------------------------ constructors

    @classmethod
    def from_matrix(cls, distortion: ArrayLike) -> AnisoMag:
        """From the canonical real-space matrix D (``x_obs = D · x_true``, (x, y) order)."""
        return cls(distortion)

    @classmethod
    def _from(cls, name: str, value: Any) -> AnisoMag:
        conv = conventions.get("anisomag", name)
        assert conv.to_canonical is not None
        return cls(conv.to_canonical(value))

    @classmethod
    def from_cryosparc(cls, m: ArrayLike) -> AnisoMag:
        """From cryoSPARC's ``ctf/anisomag`` / event-log "Anisotropic Mag".

        Parameters
        ----------
        m : (2, 2) or (4,) array_like
            M with the identity subtracted, row-major (``[M00, M01, M10, M11]``), as printed
            in the event log and stored in ``ctf/anisomag``. ``I + M`` acts on Fourier
            coordinates, ``k_obs = (I + M)·k_true``, so ``D = (I + M)⁻ᵀ``.
        """
        return cls._from("cryosparc", m)

    @classmethod
    def from_relion(cls, magmat: ArrayLike) -> AnisoMag:
        """From RELION's ``[[rlnMagMat00, rlnMagMat01], [rlnMagMat10, rlnMagMat11]]``.

        RELION samples the reference at ``MagMat · k_obs``, so ``D = MagMatᵀ``.
        """
        return cls._from("relion", magmat)

    @classmethod
    def from_motioncor(cls, major: float, minor: float, angle_deg: float) -> AnisoMag:
        """From MotionCor2/3 ``-Mag major minor angle``.

        Parameters
        ----------
        major, minor : float
            Magnifications along the major axis (the lowest-magnification direction) and
            across it; > 0. Their ratio fixes the stretch; their values fix D's isotropic scale
            under the pixel-exact normalisation (``major = σ1``, ``minor = σ2``).
        angle_deg : float
            Angle of the major axis in degrees: axis ``(cos a, −sin a)`` in (x, y) array
            coordinates (counter-clockwise from +x with row 0 displayed at the top).
        """
        return cls._from("motioncor2", (major, minor, angle_deg))

    @classmethod
    def from_cistem(cls, angle_deg: float, major: float, minor: float) -> AnisoMag:
        """From mag_distortion_estimate / cisTEM: distortion angle (deg), major, minor scale.

        The correction maps content by ``Q(φ)·diag(major, minor)·Q(φ)ᵀ`` with axis
        ``(cos φ, −sin φ)``; ``D`` is its inverse.
        """
        return cls._from("cistem", (angle_deg, major, minor))

    @classmethod
    def from_warp(cls, value: str | ArrayLike) -> AnisoMag:
        """From Warp 2 / M ``MagnificationCorrection``.

        Parameters
        ----------
        value : str, 4 numbers, or (2, 2) array_like
            The XML attribute text ``"M11, M21, M12, M22"`` or those 4 numbers in the same
            (column-major) order, or the 2×2 matrix ``[[M11, M12], [M21, M22]]``.
            ``D = Magᵀ``.
        """
        return cls._from("warp", value)

    @classmethod
    def from_warp1(
        cls,
        pixel_x_a: float,
        pixel_y_a: float,
        angle_deg: float,
        *,
        pixel_size_a: float | None = None,
    ) -> AnisoMag:
        """From Warp 1.x PixelSizeX / PixelSizeY (Å) / PixelSizeAngle (deg).

        ``pixel_size_a`` is the nominal pixel size D is relative to (default: the mean of X, Y).
        """
        value: dict[str, Any] = {
            "pixel_x_a": pixel_x_a,
            "pixel_y_a": pixel_y_a,
            "angle_deg": angle_deg,
        }
        if pixel_size_a is not None:
            value["pixel_size_a"] = pixel_size_a
        return cls._from("warp1", value)

    # ------------------------------------------------------------------ exports

    def _export(self, name: str) -> Any:
        conv = conventions.get("anisomag", name)
        assert conv.from_canonical is not None
        return conv.from_canonical(self.distortion)

    def _warn_rotation(self, target: str) -> None:
        rot = self.rotation_deg
        if abs(rot) > NEGLIGIBLE_ROTATION_DEG:
            warnings.warn(
                f"{target} parameters describe a symmetric stretch only: the rotation part of "
                f"this distortion ({rot:.3f}°) is dropped (absorb it in particle in-plane "
                "angles); exporting the symmetric part",
                LossyConversionWarning,
                stacklevel=3,
            )

    def to_cryosparc(self) -> NDArray[np.float64]:
        """CryoSPARC M (2×2, identity subtracted): ``M = D⁻ᵀ − I``; ``.ravel()`` for
        ``ctf/anisomag``.
        """
        return np.asarray(self._export("cryosparc"))

    def to_relion(self) -> NDArray[np.float64]:
        """RELION MagMat ``[[00, 01], [10, 11]] = Dᵀ``."""
        return np.asarray(self._export("relion"))

    def to_motioncor(self) -> MotionCorMag:
        """MotionCor2/3 ``-Mag``: major ≥ minor (pixel-exact: σ1, σ2 of D), angle in [0, 180).

        The angle assumes MotionCor is run on movies whose corrected sums are in the same frame
        (same y direction) as the images D was measured on; see :meth:`flip_y`. Warns
        (:class:`~emgeom.errors.LossyConversionWarning`) when D has a non-negligible rotation
        part, which MotionCor cannot represent.
        """
        self._warn_rotation("MotionCor")
        return MotionCorMag(*self._export("motioncor2"))

    def to_cistem(self) -> CistemMag:
        """mag_distortion_correct / cisTEM (angle_deg, major, minor) for an exact correction
        (``major = 1/σ2``, ``minor = 1/σ1``).
        """
        self._warn_rotation("cisTEM")
        return CistemMag(*self._export("cistem"))

    def to_warp(self) -> str:
        """Warp 2 / M ``MagnificationCorrection`` attribute text ``"M11, M21, M12, M22"``
        (``Mag = Dᵀ``, column-major).
        """
        mag = self._export("warp")
        return ", ".join(f"{v:.9g}" for v in (mag[0, 0], mag[1, 0], mag[0, 1], mag[1, 1]))

    def to_warp1(self, pixel_size_a: float) -> Warp1PixelSize:
        """Warp 1.x (PixelSizeX, PixelSizeY, PixelSizeAngle) for nominal ``pixel_size_a`` (Å)."""
        p = as_float(pixel_size_a, "pixel_size_a", positive=True, high=1e6)
        self._warn_rotation("Warp 1")
        conv = conventions.get("anisomag", "warp1")
        assert conv.from_canonical is not None
        return Warp1PixelSize(*conv.from_canonical(self.distortion, p))

    # ------------------------------------------------------------------ properties

    @property
    def distortion(self) -> NDArray[np.float64]:
        """D (2×2, float64, a copy): ``x_obs = D · x_true`` in (x, y) order."""
        return self._d.copy()

    @property
    def determinant(self) -> float:
        """Det D (> 0). 1/√det D is the pixel-size scale."""
        return float(np.linalg.det(self._d))

    @property
    def singular_values(self) -> tuple[float, float]:
        """σ1 ≥ σ2 of D: the magnifications along the two principal axes."""
        s = np.linalg.svd(self._d, compute_uv=False)
        return float(s[0]), float(s[1])

    @property
    def anisotropy_percent(self) -> float:
        """100·(σ1/σ2 − 1): the total distortion, as mag_distortion_estimate reports it."""
        s1, s2 = self.singular_values
        return 100.0 * (s1 / s2 - 1.0)

    @property
    def major_axis_deg(self) -> float:
        """MotionCor/cisTEM angle (deg, [0, 180)) of the lowest-magnification direction.

        The axis is ``(cos a, −sin a)`` in (x, y) array coordinates: counter-clockwise from +x
        when row 0 is displayed at the top. Features are most compressed along it, so the
        correction stretches along it (MotionCor's "major axis").
        """
        return stretch_axes(self._d)[2]

    @property
    def rotation_deg(self) -> float:
        """Rotation (deg, counter-clockwise with y up) of the polar decomposition D = P·R.

        MotionCor, cisTEM and Warp 1 parameters cannot carry it.
        """
        u, _, vt = np.linalg.svd(self._d)
        r = u @ vt
        return math.degrees(math.atan2(r[1, 0], r[0, 0]))

    @property
    def symmetric_part(self) -> AnisoMag:
        """P = (D·Dᵀ)^½: the pure stretch, what symmetric-only formats can represent."""
        u, s, _ = np.linalg.svd(self._d)
        return AnisoMag(u @ np.diag(s) @ u.T)

    @property
    def pixel_size_scale(self) -> float:
        """True (geometric-mean) pixel size / nominal pixel size = 1/√det D."""
        return 1.0 / math.sqrt(self.determinant)

    # ------------------------------------------------------------------ frame changes

    def flip_y(self) -> AnisoMag:
        """The same distortion seen in images whose y (row) direction is reversed.

        Use for micrographs written with the opposite y direction (cryoSPARC Patch Motion
        output vs MotionCor2 output, asarnow/pyem#81). ``D' = F·D·F`` with ``F = diag(1, −1)``:
        the MotionCor/cisTEM angle a becomes −a (mod 180).
        """
        f = np.diag([1.0, -1.0])
        return AnisoMag(f @ self._d @ f)

    def rescale(self, from_pixel_a: float, to_pixel_a: float) -> AnisoMag:
        """The same images with their declared pixel size changed from ``from_pixel_a`` to
        ``to_pixel_a`` (Å): ``D' = D · to/from`` (cryoSPARC: ``(I+M)' = (I+M)·from/to``, the
        cryosparc-tools rule).
        """
        a = as_float(from_pixel_a, "from_pixel_a", positive=True, high=1e6)
        b = as_float(to_pixel_a, "to_pixel_a", positive=True, high=1e6)
        return AnisoMag(self._d * (b / a))

    def inverse(self) -> AnisoMag:
        """The inverse distortion D⁻¹."""
        return AnisoMag(np.linalg.inv(self._d))

    # ------------------------------------------------------------------ comparison, display

    def isclose(self, other: AnisoMag, *, atol: float = 1e-9) -> bool:
        """Whether two distortions agree entry-wise within ``atol``."""
        if not isinstance(other, AnisoMag):
            raise InvalidTypeError(f"other: expected an AnisoMag, got {describe(other)}")
        tol = as_float(atol, "atol", nonnegative=True)
        return bool(np.allclose(self._d, other._d, rtol=0, atol=tol))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AnisoMag) and bool(np.array_equal(self._d, other._d))

    def __hash__(self) -> int:
        return hash(tuple(self._d.ravel().tolist()))

    def __repr__(self) -> str:
        d = self._d
        return (
            f"AnisoMag(D=[[{d[0, 0]:.8f}, {d[0, 1]:.8f}], [{d[1, 0]:.8f}, {d[1, 1]:.8f}]]; "
            f"anisotropy {self.anisotropy_percent:.3f} %, axis {self.major_axis_deg:.2f}°)"
        )

    def explain(self) -> dict[str, Any]:
        """Every convention's numbers plus the physical meaning, as a JSON-ready dict."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", LossyConversionWarning)
            mc = self.to_motioncor()
            mc_area = math.sqrt(mc.major / mc.minor)
            flipped = self.flip_y().to_motioncor()
            ci = self.to_cistem()
            s1, s2 = self.singular_values
            return {
                "distortion_D": self._d.tolist(),
                "determinant_D": self.determinant,
                "singular_values": [s1, s2],
                "anisotropy_percent": self.anisotropy_percent,
                "major_axis_deg": self.major_axis_deg,
                "rotation_deg": self.rotation_deg,
                "pixel_size_scale": self.pixel_size_scale,
                "cryosparc_M": self.to_cryosparc().tolist(),
                "cryosparc_determinant_I_plus_M": float(np.linalg.det(np.linalg.inv(self._d).T)),
                "relion_MagMat": self.to_relion().tolist(),
                "motioncor2": {
                    "major": mc.major,
                    "minor": mc.minor,
                    "angle_deg": mc.angle_deg,
                    "args": mc.as_args(),
                    "area_normalised": [mc_area, 1.0 / mc_area, mc.angle_deg],
                    "args_if_y_flipped": flipped.as_args(),
                },
                "cistem": {"angle_deg": ci.angle_deg, "major": ci.major, "minor": ci.minor},
                "warp_MagnificationCorrection": self.to_warp(),
            }


def convert(value: Any, *, source: str, target: str) -> Any:
    """Convert anisomag parameters between two registered conventions.

    Parameters
    ----------
    value : Any
        The source convention's parameters: cryosparc M (2×2 or 4 numbers, row-major),
        relion MagMat (2×2), motioncor2 (major, minor, angle_deg), cistem (angle_deg, major,
        minor), warp (XML text, 4 numbers column-major, or 2×2), warp1 (pixel_x_a,
        pixel_y_a, angle_deg), matrix/canonical (D).
    source, target : str
        Names from ``emgeom.conventions.names("anisomag")`` (aliases such as ``motioncor3``
        accepted) or ``"matrix"`` for D itself.

    Returns
    -------
    Any
        The target's parameters (ndarray, named tuple or str), as the ``to_*`` methods return.
    """
    src = _convention_name(source, "source")
    tgt = _convention_name(target, "target")
    am = AnisoMag(value) if src == "matrix" else AnisoMag._from(src, value)
    exporters = {
        "matrix": lambda: am.distortion,
        "cryosparc": am.to_cryosparc,
        "relion": am.to_relion,
        "motioncor2": am.to_motioncor,
        "cistem": am.to_cistem,
        "warp": am.to_warp,
    }
    if tgt == "warp1":
        raise InvalidValueError(
            "target: 'warp1' needs the nominal pixel size; use AnisoMag.to_warp1(pixel_size_a)"
        )
    return exporters[tgt]()


def _convention_name(name: Any, what: str) -> str:
    if not isinstance(name, str):
        raise InvalidTypeError(f"{what}: expected a convention name, got {describe(name)}")
    if name.strip().lower() in ("matrix", "canonical", "d", "emgeom"):
        return "matrix"
    return conventions.get("anisomag", name).name


def _as_anisomag(am: Any) -> AnisoMag:
    if isinstance(am, AnisoMag):
        return am
    if isinstance(am, np.ndarray | Sequence) and not isinstance(am, str):
        return AnisoMag(am)
    raise InvalidTypeError(f"am: expected an AnisoMag or a 2×2 matrix D, got {describe(am)}")


def image_center(shape: tuple[int, ...]) -> tuple[float, float]:
    """The fixed point of correction, ``(x, y) = (nx // 2, ny // 2)`` in pixels.

    This is the Fourier origin (N/2 for even N, (N−1)/2 for odd N), the centre used by
    MotionCor3 (GStretch), cisTEM (CorrectMagnificationDistortion) and RELION.
    """
    ny, nx = shape[-2], shape[-1]
    return float(nx // 2), float(ny // 2)


def _resample(
    image: Any, matrix: NDArray[np.float64], order: int, fill: float | None, n_threads: Any
) -> NDArray[Any]:
    # An array of the right dimensionality goes to warp_affine as is: it validates (and
    # converts) the image itself, float32/float64 inside the kernel's parallel pass; the
    # centre needs only the shape. Anything else is converted here first.
    fits = isinstance(image, np.ndarray) and image.ndim in (2, 3)
    img = image if fits else as_image(image, "image")
    affine = resample.affine_about_center(matrix, image_center(img.shape))
    # order, fill and n_threads are validated by warp_affine
    return resample.warp_affine(img, affine, order=order, fill=fill, n_threads=n_threads)


def correct(
    image: ArrayLike,
    am: AnisoMag | ArrayLike,
    order: int = 3,
    *,
    fill: float | None = None,
    n_threads: int | None = None,
) -> NDArray[Any]:
    """Undo the distortion: ``out(x) = image(D·(x − c) + c)`` (Rust, GIL released).

    Parameters
    ----------
    image : ndarray, (y, x) or (n, y, x)
        Observed image(s); stacks are corrected image by image in parallel. float32/float64
        kept, other real dtypes converted to float32.
    am : AnisoMag or (2, 2) array_like
        The distortion D of the images (in their own frame).
    order : {3, 1}
        Bicubic (Keys, a = −0.5; default) or bilinear interpolation.
    fill : float, optional
        Value for pixels that fall outside; default: the image mean.
    n_threads : int, optional
        Worker threads (default: all cores).

    Returns
    -------
    ndarray
        The corrected image(s), same shape, at the nominal pixel size; ``c = (nx//2, ny//2)``.
    """
    d = _as_anisomag(am).distortion
    return _resample(image, d, order, fill, n_threads)


def distort(
    image: ArrayLike,
    am: AnisoMag | ArrayLike,
    order: int = 3,
    *,
    fill: float | None = None,
    n_threads: int | None = None,
) -> NDArray[Any]:
    """Apply the distortion (simulate the microscope): ``out(x) = image(D⁻¹·(x − c) + c)``.

    Same parameters as :func:`correct`; ``correct(distort(T, am), am) ≈ T`` away from the
    border.
    """
    d = _as_anisomag(am).distortion
    return _resample(image, np.asarray(np.linalg.inv(d), dtype=np.float64), order, fill, n_threads)
