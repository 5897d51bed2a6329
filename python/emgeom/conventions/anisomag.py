"""Anisotropic-magnification conventions of cryoSPARC, RELION, MotionCor2/3, cisTEM and Warp.

Canonical form (emgeom): the real-space matrix **D** with ``x_obs = D · x_true``, where
``x = (column, row)`` of the image *as stored in the file*, relative to the image centre, in
nominal units (pixels or Å at the declared pixel size). In Fourier space this means
``k_true = Dᵀ · k_obs``.

Each entry below states the stored numbers, the formula to D and back, and its sources. The
formulas are the single place where these conventions live; :mod:`emgeom.anisomag` only calls
them. Derivations and the evidence for each choice: ``docs/conventions.md`` (anisomag section).

Notation: ``Q(a) = [u, u⊥]`` with ``u = (cos a, −sin a)`` and ``u⊥ = (sin a, cos a)`` in
``(x, y)`` array coordinates; ``u`` is the axis of MotionCor's ``-Mag`` angle ``a`` (counter-
clockwise from +x when row 0 is displayed at the top).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from emgeom._validate import as_float, as_matrix, describe
from emgeom.conventions._registry import Convention, Source, register
from emgeom.errors import InvalidTypeError, InvalidValueError, ShapeError

__all__ = [
    "CistemMag",
    "MotionCorMag",
    "Warp1PixelSize",
    "axis_frame",
    "stretch_axes",
]

Matrix = NDArray[np.float64]
_I2 = np.eye(2)
#: Entries beyond this are not a magnification matrix (and would overflow the algebra).
_MAX_ENTRY = 1e3
#: Largest pixel size (Å) or scale accepted from a program's parameters.
_MAX_SCALAR = 1e6


class MotionCorMag(NamedTuple):
    """MotionCor2/3 ``-Mag major minor angle`` (major ≥ minor, angle in [0, 180) degrees)."""

    major: float
    minor: float
    angle_deg: float

    def as_args(self, digits: int = 6) -> str:
        """The command-line fragment, e.g. ``-Mag 1.011726 0.989718 58.875``."""
        return (
            f"-Mag {self.major:.{digits}f} {self.minor:.{digits}f} "
            f"{self.angle_deg:.{max(digits - 3, 2)}f}"
        )


class CistemMag(NamedTuple):
    """cisTEM / mag_distortion_correct: distortion angle (deg), major scale, minor scale."""

    angle_deg: float
    major: float
    minor: float


class Warp1PixelSize(NamedTuple):
    """Warp 1.x ``PixelSizeX``, ``PixelSizeY`` (Å) and ``PixelSizeAngle`` (deg)."""

    pixel_x_a: float
    pixel_y_a: float
    angle_deg: float


def axis_frame(angle_deg: float) -> Matrix:
    """``Q(a) = [u, u⊥]`` with ``u = (cos a, −sin a)``, ``u⊥ = (sin a, cos a)`` (columns)."""
    a = math.radians(angle_deg)
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, s], [-s, c]])


def stretch_axes(d: Matrix) -> tuple[float, float, float]:
    """Symmetric part of D as ``(σ1, σ2, angle_deg)``.

    ``σ1 ≥ σ2`` are the singular values of D; the angle (in [0, 180)) is the MotionCor/cisTEM
    angle of the left singular vector for σ2, the **lowest-magnification direction** (observed
    features are most compressed along it). For an isotropic D the angle is 0.
    """
    u, s, _ = np.linalg.svd(d)
    sigma1, sigma2 = float(s[0]), float(s[1])
    if sigma1 - sigma2 <= 1e-12 * sigma1:
        return sigma1, sigma2, 0.0
    u2 = u[:, 1]
    angle = math.degrees(math.atan2(-u2[1], u2[0])) % 180.0
    if angle >= 180.0 - 1e-9:  # round-off at the period boundary
        angle = 0.0
    return sigma1, sigma2, angle


def _along_axis(angle_deg: float, along: float, across: float) -> Matrix:
    q = axis_frame(angle_deg)
    return q @ np.diag([along, across]) @ q.T


def _params(value: Any, names: Sequence[str], what: str) -> list[float]:
    if isinstance(value, Mapping):
        try:
            items = [value[n] for n in names]
        except KeyError as exc:
            raise InvalidValueError(
                f"{what}: expected keys {list(names)}, got {sorted(value)}"
            ) from exc
    elif isinstance(value, Sequence | np.ndarray) and not isinstance(value, str):
        items = list(value)
        if len(items) != len(names):
            raise ShapeError(
                f"{what}: expected {len(names)} numbers ({', '.join(names)}), "
                f"got {len(items)}: {describe(value)}"
            )
    else:
        raise InvalidTypeError(
            f"{what}: expected ({', '.join(names)}) as a sequence or mapping, got {describe(value)}"
        )
    return [
        as_float(v, f"{what}.{n}", low=-_MAX_SCALAR, high=_MAX_SCALAR)
        for v, n in zip(items, names, strict=True)
    ]


def _positive_scales(major: float, minor: float, what: str) -> None:
    if major <= 0 or minor <= 0:
        raise InvalidValueError(
            f"{what}: major and minor scales must be > 0, got major={major}, minor={minor}"
        )


# --- cryoSPARC -----------------------------------------------------------------------------


def _cryosparc_to_d(value: Any) -> Matrix:
    m = as_matrix(value, "cryosparc anisomag M", (2, 2), max_abs=_MAX_ENTRY)
    a = _I2 + m
    if abs(np.linalg.det(a)) < 1e-12:
        raise InvalidValueError(
            f"cryosparc anisomag M: I + M is singular (M = {m.tolist()}); "
            "cryoSPARC stores the matrix with the identity subtracted, so M should be small"
        )
    return np.asarray(np.linalg.inv(a).T)


def _d_to_cryosparc(d: Matrix) -> Matrix:
    return np.asarray(np.linalg.inv(d).T - _I2)


register(
    Convention(
        name="cryosparc",
        quantity="anisomag",
        program="cryoSPARC ≥ 3.3 (Global CTF Refinement; `ctf/anisomag` of .cs files)",
        parameters="M: 2×2, stored row-major as 4 float32 [M00, M01, M10, M11], identity "
        "subtracted (all zeros = no distortion); the event log prints the same M and "
        "'Anisotropic Mag Determinant' = det(I + M)",
        meaning="I + M is a passive transformation of Fourier coordinates: k_obs = (I+M)·k_true, "
        "so D = (I+M)⁻ᵀ and RELION MagMat = (I+M)⁻¹",
        sources=(
            Source(
                "cryoSPARC (staff answer, mmclean)",
                "https://discuss.cryosparc.com/t/convert-aniso-mag-to-motion-corr2/12204",
                note="'I + M specifies a passive transformation on coordinates in Fourier space'",
            ),
            Source(
                "cryosparc-tools",
                "docs/examples/magnification.ipynb (Combine Different Magnifications)",
                repository="cryoem-uoft/cryosparc-tools",
                note="relabelling 0.876667 Å/px as 0.6575 Å/px sets I+M = 1.3333·I: declared "
                "pixel too small ⇒ k_obs = 1.333·k_true, i.e. k_obs = (I+M)·k_true",
            ),
            Source(
                "cryosparc-tools",
                "tests/conftest.py: dtype ('ctf/anisomag', '<f4', (4,))",
                repository="cryoem-uoft/cryosparc-tools",
            ),
            Source(
                "cryoSPARC forum",
                "https://discuss.cryosparc.com/t/help-interpreting-the-anisotropic-magnification-matrix/11402/2",
                note="row-major reshape, add the identity",
            ),
        ),
        confidence="medium",
        notes="The direction is not stated in cryoSPARC's documentation. The literal 'active' "
        "reading (k_true = (I+M)·k_obs) is contradicted by the first-party cryosparc-tools "
        "pixel-size example; a third-party simulator (joelyeois/specter) uses the active "
        "reading without validation. Axis order (x = column, y = row) is inferred from pyem's "
        "1:1 mapping of other cryoSPARC 2-D fields to RELION (pyem #86).",
        to_canonical=_cryosparc_to_d,
        from_canonical=_d_to_cryosparc,
    )
)


# --- RELION --------------------------------------------------------------------------------


def _relion_to_d(value: Any) -> Matrix:
    return as_matrix(value, "relion MagMat", (2, 2), max_abs=_MAX_ENTRY).T.copy()


def _d_to_relion(d: Matrix) -> Matrix:
    return np.asarray(d.T.copy())


register(
    Convention(
        name="relion",
        quantity="anisomag",
        program="RELION ≥ 3.1 (optics table `_rlnMagMat00/01/10/11`; also RELION 4, 5)",
        parameters="MagMat: [[rlnMagMat00, rlnMagMat01], [rlnMagMat10, rlnMagMat11]] "
        "(element row,column), unitless, relative to rlnImagePixelSize; identity if absent",
        meaning="the reference is sampled at k_true = MagMat·k_obs (k_x = column, k_y = row), "
        "so D = MagMatᵀ",
        sources=(
            Source(
                "RELION 5.0",
                "src/jaz/single_particle/obs_model.cpp: ObservationModel::applyAnisoMag; "
                "src/projector.cpp: Projector::project",
                repository="3dem/relion",
                note="A3D ← diag(M,1)⁻¹·A3D; projector samples the reference at Ainv·(k_x, k_y, 0)",
            ),
            Source("RELION 5.0", "src/ctf.h: CTF::getCTF (CTF evaluated at M·k)", "3dem/relion"),
            Source(
                "RELION 5.0",
                "src/metadata_label.h: rlnMagMat00 = 'element 1,1', rlnMagMat01 = 'element 1,2'",
                "3dem/relion",
            ),
        ),
        confidence="high",
        to_canonical=_relion_to_d,
        from_canonical=_d_to_relion,
    )
)


# --- Warp 2 / M ----------------------------------------------------------------------------


def _warp_to_d(value: Any) -> Matrix:
    what = "warp MagnificationCorrection"
    if isinstance(value, str):  # the XML attribute text
        try:
            value = [float(v) for v in value.replace(";", ",").split(",")]
        except ValueError as exc:
            raise InvalidValueError(
                f"{what}: expected 'M11, M21, M12, M22', got {value!r}"
            ) from exc
    arr = np.asarray(value, dtype=object)
    if arr.ndim == 1 and arr.size == 3:
        raise InvalidValueError(
            f"{what}: {describe(value)} has 3 numbers: that is Warp 1.x's MagnificationCorrection "
            "(x scale, y scale, angle), a different convention that emgeom does not guess; "
            "Warp 2 / M writes 4 numbers"
        )
    if arr.ndim == 1 and arr.size == 4:  # XML order is column-major
        m11, m21, m12, m22 = (as_float(v, what) for v in arr)
        value = [[m11, m12], [m21, m22]]
    return as_matrix(value, what, (2, 2), max_abs=_MAX_ENTRY).T.copy()


def _d_to_warp(d: Matrix) -> Matrix:
    return np.asarray(d.T.copy())


register(
    Convention(
        name="warp",
        quantity="anisomag",
        program="Warp 2 / M (per-item `MagnificationCorrection`, Matrix2)",
        parameters="Mag: 2×2 matrix; the XML attribute lists it column-major as "
        "'M11, M21, M12, M22'",
        meaning="same semantics as RELION's MagMat: the reference is sampled at Mag·k_obs, "
        "so D = Magᵀ",
        sources=(
            Source(
                "Warp 2 / M",
                "NativeAcceleration/src/MPARefine.cu (reference sampled at Mag·(x, y))",
                repository="warpem/warp",
            ),
            Source(
                "Warp 2 / M",
                "WarpLib/Tools/Matrix2.cs: ToString/Parse order M11, M21, M12, M22",
                repository="warpem/warp",
            ),
        ),
        confidence="high",
        notes='Warp 1.x files carry an older 3-number `MagnificationCorrection="x, y, angle"` '
        "('a different, weird convention', WarpLib/Movie.cs) which emgeom refuses rather "
        "than guesses; Warp 1's PixelSizeX/Y/Angle are the `warp1` convention.",
        to_canonical=_warp_to_d,
        from_canonical=_d_to_warp,
    )
)


# --- MotionCor2 / MotionCor3 ---------------------------------------------------------------


def _motioncor_to_d(value: Any) -> Matrix:
    major, minor, angle = _params(value, ("major", "minor", "angle_deg"), "motioncor -Mag")
    _positive_scales(major, minor, "motioncor -Mag")
    # Corrected content = S·observed, S = stretch by major/minor along u; exact up to scale when
    # D = k·Q·diag(minor, major)·Qᵀ. The pixel-exact normalisation (major = σ1, minor = σ2,
    # which to_motioncor emits and MotionCor's header pixel size p/max(major, minor) assumes)
    # fixes k = 1.
    return _along_axis(angle, minor, major)


def _d_to_motioncor(d: Matrix) -> MotionCorMag:
    sigma1, sigma2, angle = stretch_axes(d)
    return MotionCorMag(major=sigma1, minor=sigma2, angle_deg=angle)


register(
    Convention(
        name="motioncor2",
        quantity="anisomag",
        program="MotionCor2 ≥ 1.0 (03/2017) and MotionCor3 (`-Mag major minor angle`)",
        parameters="major ≥ minor (magnification along the major axis and across it), angle "
        "(deg) of the major axis; the major axis is the lowest-magnification direction",
        meaning="the corrected sum is actively stretched by S = Q(a)·diag(major/minor, 1)·Q(a)ᵀ "
        "(axis u = (cos a, −sin a) in (x, y) array coordinates, about (Nx/2, Ny/2)); "
        "D = Q(a)·diag(minor, major)·Q(a)ᵀ with the pixel-exact normalisation major = σ1(D), "
        "minor = σ2(D), for which MotionCor's output pixel p/max(major, minor) is the true one",
        sources=(
            Source(
                "MotionCor3 1.2.1",
                "Align/CAlignParam.cpp: GetMagStretch (stretch = major/minor, axis angle = −angle; "
                "'mag_distortion_correct … y-axis points downward. My y-axis points upward')",
                repository="czimaginginstitute/MotionCor3",
            ),
            Source(
                "MotionCor3 1.2.1",
                "Correct/GStretch.cu: GStretch::Setup, mGStretch (output(x) = input(S⁻¹x))",
                repository="czimaginginstitute/MotionCor3",
            ),
            Source(
                "MotionCor3 1.2.1",
                "CInput.cpp: -Mag help text; GetFinalPixelSize = p·FtBin/max(major, minor)",
                repository="czimaginginstitute/MotionCor3",
            ),
            Source(
                "Scipion",
                "https://github.com/I2PC/scipion/issues/1162 (the 01/2017 build took "
                "1/major, 1/minor, −angle)",
            ),
        ),
        confidence="high",
        notes="MotionCor2 is closed source; MotionCor3 is its continuation by the same author. "
        "The stretch fixes only the shape: D's isotropic scale is unknown unless the pixel-"
        "exact normalisation was used (mag_distortion_estimate's area-normalised output has "
        "major·minor ≈ 1 and gives the same geometry).",
        to_canonical=_motioncor_to_d,
        from_canonical=_d_to_motioncor,
        aliases=("motioncor3", "motioncor"),
    )
)


# --- cisTEM / mag_distortion_estimate / mag_distortion_correct ------------------------------


def _cistem_to_d(value: Any) -> Matrix:
    angle, major, minor = _params(value, ("angle_deg", "major", "minor"), "cistem")
    _positive_scales(major, minor, "cistem")
    # Correction C = Q(φ)·diag(J, N)·Q(φ)ᵀ maps observed content to true content: D = C⁻¹.
    return _along_axis(angle, 1.0 / major, 1.0 / minor)


def _d_to_cistem(d: Matrix) -> CistemMag:
    sigma1, sigma2, angle = stretch_axes(d)
    return CistemMag(angle_deg=angle, major=1.0 / sigma2, minor=1.0 / sigma1)


register(
    Convention(
        name="cistem",
        quantity="anisomag",
        program="cisTEM / mag_distortion_estimate / mag_distortion_correct (Grant & Grigorieff "
        "2015), also unblur and ctffind",
        parameters="distortion angle φ (deg), major scale J, minor scale N",
        meaning="the correction samples the input at Q(φ)·diag(1/J, 1/N)·Q(φ)ᵀ·d, i.e. maps "
        "content by C = Q(φ)·diag(J, N)·Q(φ)ᵀ (about N/2); exact correction: D = C⁻¹, "
        "J = 1/σ2(D), N = 1/σ1(D)",
        sources=(
            Source(
                "cisTEM",
                "src/core/image.cpp: Image::CorrectMagnificationDistortion",
                repository="timothygrant80/cisTEM",
            ),
            Source(
                "cisTEM",
                "src/core/functions.cpp: ReturnMagDistortionCorrectedPixelSize (p / ((J + N)/2))",
                repository="timothygrant80/cisTEM",
            ),
            Source(
                "Grigorieff lab forum",
                "https://grigoriefflab.umassmed.edu/forum/software/magdistortion/angle_definition",
                note="19.6° mag distortion vs ≈ 70° CTFFIND astigmatism: consistent with the axis "
                "(cos φ, −sin φ)",
            ),
        ),
        confidence="high",
        notes="Same axis handedness and angle as MotionCor (MotionCor3's comment about the "
        "opposite y axis is compensated by its −angle). mag_distortion_estimate also prints "
        "'stretch only' parameters (minor = 1): pass those as major = ratio, minor = 1; the "
        "geometry is the same up to isotropic scale.",
        to_canonical=_cistem_to_d,
        from_canonical=_d_to_cistem,
        aliases=("mag_distortion_estimate", "mag_distortion_correct", "unblur", "ctffind"),
    )
)


# --- Warp 1.x ------------------------------------------------------------------------------


def _warp1_to_d(value: Any) -> Matrix:
    if isinstance(value, Mapping) and "pixel_size_a" in value:
        nominal = as_float(
            value["pixel_size_a"], "warp1.pixel_size_a", positive=True, high=_MAX_SCALAR
        )
        value = {k: v for k, v in value.items() if k != "pixel_size_a"}
    else:
        nominal = None
    px, py, angle = _params(value, ("pixel_x_a", "pixel_y_a", "angle_deg"), "warp1")
    _positive_scales(px, py, "warp1 pixel sizes")
    if nominal is None:
        nominal = 0.5 * (px + py)
    # Pixel size X along (cos θ, sin θ) and Y across: x_obs = (p_nom/X) x_true along θ.
    t = math.radians(angle)
    r = np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
    return np.asarray(r @ np.diag([nominal / px, nominal / py]) @ r.T)


def _d_to_warp1(d: Matrix, pixel_size_a: float = 1.0) -> Warp1PixelSize:
    sigma1, sigma2, angle = stretch_axes(d)
    # The lowest-magnification direction u2 = (cos a, −sin a) has the largest true pixel.
    return Warp1PixelSize(
        pixel_x_a=pixel_size_a / sigma2,
        pixel_y_a=pixel_size_a / sigma1,
        angle_deg=(-angle) % 180.0,
    )


register(
    Convention(
        name="warp1",
        quantity="anisomag",
        program="Warp 1.x (PixelSizeX, PixelSizeY, PixelSizeAngle)",
        parameters="pixel size X (Å) along the axis at angle θ, Y across it, θ in degrees",
        meaning="X along (cos θ, sin θ) in (x, y) array coordinates — the opposite rotation "
        "sense to MotionCor/cisTEM; D = R(θ)·diag(p/X, p/Y)·R(θ)ᵀ with p the nominal pixel "
        "size (default (X + Y)/2)",
        sources=(
            Source(
                "Warp 1.x",
                "WarpLib/CTF.cs / WarpLib/Movie.cs: pixel size at azimuth ψ = "
                "p̄ + ((X − Y)/2)·cos 2(ψ − θ)",
                repository="cramerlab/warp",
            ),
            Source(
                "Warp docs",
                "docs/reference/warp/interface/interface_overview.md ('anti-clockwise rotation "
                "of this X/Y coordinate system')",
                repository="warpem/warp",
            ),
        ),
        confidence="medium",
        notes="Warp 1's particle-export resampling appears to use half this anisotropy "
        "(gtom MagAnisotropy.cu called with p̄ ± (X−Y)/4); not verified by running Warp 1.",
        to_canonical=_warp1_to_d,
        from_canonical=_d_to_warp1,
    )
)
