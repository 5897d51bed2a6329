"""Tilt-series geometry conventions: Warp/M, RELION 5, RELION 4 matrices, IMOD, AreTomo3, pytom.

Canonical form (emgeom, :mod:`emgeom.tilt`): per tilt ``R = Rz(ψ)·Ry(θ)·Rx(χ)`` with θ in the
IMOD/AreTomo/RELION sign and ψ the tilt axis CCW from +Y in the raw image; defocus
``Δf = Δf0 − h·κ·z'``; ``h = +1`` is the IMOD convention. Each entry converts one tilt's stored
numbers to ``{"tilt_deg", "axis_deg", "x_tilt_deg", "hand"}`` and back. Evidence and test
references: ``docs/conventions.md`` (tilt section) and design note ``handedness.md``.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from emgeom._validate import as_float
from emgeom.conventions._registry import Convention, Source, register
from emgeom.errors import InvalidValueError, LossyConversionWarning
from emgeom.model.fields import as_hand
from emgeom.model.geometry import angles_from_matrices, rotation_matrices

__all__ = ["aretomo3_hand"]


def _h(value: Any, name: str) -> int:
    v = as_float(value, name)
    if v not in (1.0, -1.0):
        raise InvalidValueError(f"{name}: expected +1 or -1, got {value!r}")
    return int(v)


def _canon(tilt: float, axis: float, xt: float, hand: int) -> dict[str, Any]:
    return {"tilt_deg": tilt, "axis_deg": axis, "x_tilt_deg": xt, "hand": hand}


# ---------------------------------------------------------------- Warp / M
def _warp_to(
    angle_deg: float,
    axis_angle_deg: float,
    level_angle_x_deg: float = 0.0,
    level_angle_y_deg: float = 0.0,
    are_angles_inverted: bool = False,
) -> dict[str, Any]:
    return _canon(
        -(as_float(angle_deg, "angle_deg") + as_float(level_angle_y_deg, "level_angle_y_deg")),
        as_float(axis_angle_deg, "axis_angle_deg"),
        as_float(level_angle_x_deg, "level_angle_x_deg"),
        +1 if bool(are_angles_inverted) else -1,
    )


def _warp_from(tilt_deg: float, axis_deg: float, x_tilt_deg: float, hand: int) -> dict[str, Any]:
    return {
        "Angle": -float(tilt_deg),
        "AxisAngle": float(axis_deg),
        "LevelAngleX": float(x_tilt_deg),
        "LevelAngleY": 0.0,
        "AreAnglesInverted": _h(hand, "hand") == +1,
    }


register(
    Convention(
        name="warp",
        quantity="tilt",
        program="Warp / M (WarpTools 2.x)",
        parameters="XML <Angles>, <AxisAngle>, LevelAngleX/Y, AreAnglesInverted; GridCTF µm",
        meaning="θ = −(Angle + LevelAngleY), ψ = AxisAngle, χ = LevelAngleX; "
        "h = +1 if AreAnglesInverted else −1; Δf0[Å] = GridCTF[µm]·1e4",
        sources=(
            Source(
                "Warp 2.0",
                "WarpLib/TiltSeries/TiltSeries.cs: GetPositionInAllTilts, AreAnglesInverted",
                "warpem/warp",
                "tilt matrix Euler(0, Angle+LevelAngleY, −AxisAngle)·RotateX(LevelAngleX); "
                "defocus + 1e-4·z' (µm) unless inverted",
            ),
            Source("Warp 2.0", "WarpLib/Tools/Matrix3.cs: Euler, RotateX", "warpem/warp"),
            Source(
                "WarpTools",
                "WarpLib/TiltSeries/RelionParticleSeriesExport.cs: GetRelionHand",
                "warpem/warp",
                "exports rlnTomoHand = −1 for AreAnglesInverted False (opposite of what RELION "
                "needs to reproduce Warp's defocus; tested with real data)",
            ),
        ),
        confidence="high",
        notes="Warp's tilt angle is the negative of IMOD/AreTomo/RELION's for the same "
        "tomogram (ts_import inverts mdoc angles by default). AreAnglesInverted only negates "
        "the depth term (verified, test T5).",
        to_canonical=_warp_to,
        from_canonical=_warp_from,
        aliases=("m", "warptools"),
    )
)


# ---------------------------------------------------------------- RELION 5
def _relion5_to(
    x_tilt_deg: float, y_tilt_deg: float, z_rot_deg: float, tomo_hand: float
) -> dict[str, Any]:
    return _canon(
        as_float(y_tilt_deg, "y_tilt_deg"),
        as_float(z_rot_deg, "z_rot_deg"),
        as_float(x_tilt_deg, "x_tilt_deg"),
        -_h(tomo_hand, "tomo_hand"),
    )


def _relion5_from(tilt_deg: float, axis_deg: float, x_tilt_deg: float, hand: int) -> dict[str, Any]:
    return {
        "rlnTomoXTilt": float(x_tilt_deg),
        "rlnTomoYTilt": float(tilt_deg),
        "rlnTomoZRot": float(axis_deg),
        "rlnTomoHand": -_h(hand, "hand"),
    }


register(
    Convention(
        name="relion5",
        quantity="tilt",
        program="RELION 5 (tomography)",
        parameters="_rlnTomoXTilt/_rlnTomoYTilt/_rlnTomoZRot (deg), _rlnTomoX/YShiftAngst, "
        "_rlnTomoHand, _rlnTomoDefocusSlope, _rlnDefocusU/V/Angle (Å)",
        meaning="θ = YTilt, ψ = ZRot, χ = XTilt, s = (XShiftAngst, YShiftAngst); "
        "h = −rlnTomoHand; κ = rlnTomoDefocusSlope",
        sources=(
            Source(
                "RELION 5.0",
                "src/jaz/tomography/tomogram.cpp: Tomogram::getCtf, Tomogram::getDepthOffset",
                "3dem/relion",
                "ΔfU,V += rlnTomoHand·pixelSize·defocusSlope·(ProjZ·(pos − centre))",
            ),
            Source(
                "RELION 5.0",
                "src/jaz/tomography/tomogram_set.cpp: TomogramSet::loadTomogram",
                "3dem/relion",
                "P = S(shift)·S(centre)·Rz(ZRot)·Ry(YTilt)·Rx(XTilt)·S(−centre)",
            ),
            Source(
                "RELION 5.0",
                "src/tomography_python_programs/align_tilt_series/imod/_utils.py",
                "3dem/relion",
                "YTilt = IMOD .tlt, ZRot from .xf, XTilt = 0",
            ),
        ),
        confidence="high",
        notes="RELION's GUI default rlnTomoHand = −1 (EMPIAR-10164 tutorial) is the IMOD "
        "convention (canonical h = +1).",
        to_canonical=_relion5_to,
        from_canonical=_relion5_from,
        aliases=("relion", "relion-5"),
    )
)


# ---------------------------------------------------------------- RELION 4 projection matrices
def _relion4_to(proj_x: Any, proj_y: Any, proj_z: Any, tomo_hand: float) -> dict[str, Any]:
    r = np.array([np.asarray(v, dtype=float)[:3] for v in (proj_x, proj_y, proj_z)])
    if r.shape != (3, 3) or not np.allclose(r @ r.T, np.eye(3), atol=1e-3):
        raise InvalidValueError("proj_x/y/z: the 3×3 rotation part must be orthonormal")
    t, a, x = angles_from_matrices(r[None])
    return _canon(float(t[0]), float(a[0]), float(x[0]), -_h(tomo_hand, "tomo_hand"))


def _relion4_from(tilt_deg: float, axis_deg: float, x_tilt_deg: float, hand: int) -> dict[str, Any]:
    r = rotation_matrices(tilt_deg, axis_deg, x_tilt_deg)[0]
    return {
        "rlnTomoProjX": [*r[0], 0.0],
        "rlnTomoProjY": [*r[1], 0.0],
        "rlnTomoProjZ": [*r[2], 0.0],
        "rlnTomoProjW": [0.0, 0.0, 0.0, 1.0],
        "rlnTomoHand": -_h(hand, "hand"),
    }


register(
    Convention(
        name="relion4",
        quantity="tilt",
        program="RELION 4 / WarpTools RELION export (projection matrices)",
        parameters="_rlnTomoProjX/Y/Z/W (rows of the 4×4 projection, tilt-series pixels), "
        "_rlnTomoHand",
        meaning="R = rows ProjX/Y/Z[0:3] = Rz(ψ)Ry(θ)Rx(χ); z' = ProjZ[0:3]·p; h = −rlnTomoHand; "
        "image shift s[Å] = pixel·(t_xy + [R·c_vol]_xy − c_img), t = column 3 of the rows, "
        "c_vol = rlnTomoSizeX/Y/Z / 2.0, c_img = (nx//2, ny//2) of the tilt-series image",
        sources=(
            Source(
                "RELION 4.0/5.0",
                "src/jaz/tomography/tomogram_set.cpp: TomogramSet::loadTomogram",
                "3dem/relion",
                "matrices used verbatim when present ('has relion-4 definition'); "
                "Tomogram::centre = (w0/2.0, h0/2.0, d0/2.0); image size from the stack "
                "(rlnTomoTiltSeriesName) or first rlnMicrographName header",
            ),
            Source(
                "RELION 5.0",
                "src/jaz/tomography/tomogram.cpp: Tomogram::getProjectionAnglesFromMatrix, "
                "Tomogram::setProjectionMatrix",
                "3dem/relion",
                "matrix → XTilt/YTilt/ZRot and X/YShiftAngst: shift = pixel·column 3 of "
                "A·S(centre)·R⁻¹·S(−int(N/2) image centre); setProjectionMatrix builds "
                "S(shift/px)·S(int(N/2))·Rz·Ry·Rx·S(−int(w0/2), …) (integer volume centre: "
                "half a voxel apart from the inverse for odd sizes)",
            ),
            Source(
                "RELION 4.0",
                "src/jaz/tomography/particle_set.cpp: ParticleSet::getPosition",
                "3dem/relion",
                "RELION 4.0 added 1 to each particle coordinate before applying the matrix; "
                "RELION 5 no longer does (emgeom follows RELION 5)",
            ),
            Source(
                "WarpTools",
                "WarpTools/Commands/Tiltseries/ExportParticlesTiltseries.cs",
                "warpem/warp",
                "writes rows of Warp's tilt matrix, zero translation",
            ),
        ),
        confidence="high",
        notes="Translations (column 3) include the image centre, which the star file does not "
        "carry: emgeom.tilt.read_relion recovers the shifts when the image size is known "
        "(image_shape= or the stack's MRC header), else sets them to 0 (depth/defocus exact "
        "either way); all-zero translations (WarpTools) mean zero shifts. Positions follow "
        "RELION 5; RELION 4.0's +1 coordinate offset moves them by R·(1, 1, 1) pixels. "
        "This per-tilt entry converts the rotation and hand only (from_canonical writes a "
        "zero translation; emgeom.tilt.to_relion(layout='relion4', image_shape=) writes it).",
        to_canonical=_relion4_to,
        from_canonical=_relion4_from,
        aliases=("relion-4", "relion_matrices"),
    )
)


# ---------------------------------------------------------------- IMOD
def _imod_to(
    tlt_deg: float, xf_a11: float, xf_a21: float, invert: bool = False, xtilt_deg: float = 0.0
) -> dict[str, Any]:
    return _canon(
        as_float(tlt_deg, "tlt_deg"),
        math.degrees(math.atan2(-as_float(xf_a21, "xf_a21"), as_float(xf_a11, "xf_a11"))),
        as_float(xtilt_deg, "xtilt_deg"),
        -1 if bool(invert) else +1,
    )


def _imod_from(tilt_deg: float, axis_deg: float, x_tilt_deg: float, hand: int) -> dict[str, Any]:
    a = math.radians(axis_deg)
    return {
        "tlt": float(tilt_deg),
        "xf_rotation": [math.cos(a), math.sin(a), -math.sin(a), math.cos(a)],
        "xtilt": float(x_tilt_deg),
        "ctfphaseflip_invert": _h(hand, "hand") == -1,
    }


register(
    Convention(
        name="imod",
        quantity="tilt",
        program="IMOD (tilt, tiltalign, ctfplotter, ctfphaseflip)",
        parameters=".tlt (deg), .xf rows A11 A12 A21 A22 DX DY (raw → aligned), .xtilt, "
        "ctfplotter .defocus (nm), ctfphaseflip -invert",
        meaning="θ = .tlt, ψ = atan2(−A21, A11), χ = .xtilt − XAXISTILT, "
        "s = −A⁻¹·(DX, DY)·pixel; h = +1 (−1 with ctfphaseflip -invert)",
        sources=(
            Source(
                "IMOD 4.11",
                "https://bio3d.colorado.edu/imod/doc/man/ctfphaseflip.html",
                note="'At positive tilt angles, the right side of the images should be more "
                "underfocused than the left side; if not, then this option [-invert] is needed'",
            ),
            Source(
                "IMOD 4.11",
                "https://bio3d.colorado.edu/imod/doc/man/tiltalign.html",
                note="RotationAngle CCW from the Y axis",
            ),
            Source(
                "IMOD 4.7",
                "flib/tilt/tilt.f90",
                "LabShare-Archive/IMOD",
                "tilt sign; x-axis tilt: alpha = XTILTFILE − XAXISTILT, sinAlpha = −sin alpha, "
                "sinBeta = −sin θ in the upside-down slice frame ⇒ canonical χ = +alpha",
            ),
            Source(
                "yet-another-imod-wrapper",
                "src/yet_another_imod_wrapper/utils/xf.py: XF.specimen_shifts",
                "teamtomo/yet-another-imod-wrapper",
                "specimen shifts = −A⁻¹·(DX, DY)",
            ),
        ),
        confidence="high",
        notes="The .xtilt sign follows tilt.f90's projection (tested by re-implementing it); "
        "the xtilt_deg parameter here is the value tilt uses (.xtilt minus tilt.com's "
        "XAXISTILT). RELION's IMOD import sets XTilt = 0.",
        to_canonical=_imod_to,
        from_canonical=_imod_from,
        aliases=("etomo", "ctfphaseflip", "ctfplotter"),
    )
)


# ---------------------------------------------------------------- AreTomo3
def aretomo3_hand(df_hand: int, *, axis_refined: bool = True) -> int:
    """Canonical ``h`` of an AreTomo3 ``.aln`` given the ``_CTF.txt`` ``dfHand`` (design T12).

    ``dfHand = +1`` → ``h = −1``. ``dfHand = −1`` with axis refinement allowed (second
    ``-TiltAxis`` value ≥ 0): ROT was already rotated by 180° in the ``.aln`` → ``h = −1``.
    ``dfHand = −1`` with a fixed axis (``-TiltAxis a -1``): ROT not rotated → ``h = +1``.
    """
    d = as_hand(df_hand, "df_hand")
    if d == +1 or axis_refined:
        return -1
    return +1


def _aretomo_to(
    tilt_deg: float, rot_deg: float, df_hand: int = +1, axis_refined: bool = True
) -> dict[str, Any]:
    return _canon(
        as_float(tilt_deg, "tilt_deg"),
        as_float(rot_deg, "rot_deg"),
        0.0,
        aretomo3_hand(_h(df_hand, "df_hand"), axis_refined=bool(axis_refined)),
    )


def _aretomo_from(tilt_deg: float, axis_deg: float, x_tilt_deg: float, hand: int) -> dict[str, Any]:
    if float(x_tilt_deg) != 0.0:
        warnings.warn(
            "aretomo3: the .aln has no x-axis tilt; dropped", LossyConversionWarning, stacklevel=2
        )
    h = _h(hand, "hand")
    if h == +1:
        # AreTomo3's own CTF model is h = −1: describe the same data with the axis rotated
        return {
            "TILT": float(tilt_deg),
            "ROT": (float(axis_deg) + 360.0) % 360.0 - 180.0,
            "note": "h=+1 expressed as h=-1 with ROT+180 and positions p -> -p",
        }
    return {"TILT": float(tilt_deg), "ROT": float(axis_deg)}


register(
    Convention(
        name="aretomo3",
        quantity="tilt",
        program="AreTomo3 (≥ 2.0.6)",
        parameters=".aln SEC ROT GMAG TX TY ... TILT; _CTF.txt column 8 dfHand",
        meaning="θ = TILT, ψ = ROT, s = (TX, TY)·pixel; h = −1 unless dfHand = −1 with a fixed "
        "axis (then +1)",
        sources=(
            Source(
                "AreTomo3 2.3",
                "AreTomo/FindCtf/CTiltInducedZ.cpp: DoIt",
                "czimaginginstitute/AreTomo3",
                "tile ΔZ = −x·tan(tilt) …, defocus = Δf_c + hand·ΔZ",
            ),
            Source(
                "AreTomo3 2.3",
                "AreTomo/CAreTomoMain.cpp",
                "czimaginginstitute/AreTomo3",
                "ROT += 180° when the measured hand is −1 and the axis may be refined",
            ),
            Source(
                "AreTomo3 2.3",
                "AreTomo/FindCtf/CRefineCtfMain.cpp: mFindHandedness",
                "czimaginginstitute/AreTomo3",
            ),
        ),
        confidence="medium",
        notes="AreTomo3's manual states +Z points to the source with 'positive defocus "
        "handedness'; its physics premise is questioned in the design note (finding 7). The "
        "mapping follows its code, and agrees with Warp on the real Position_16_3 series.",
        to_canonical=_aretomo_to,
        from_canonical=_aretomo_from,
        aliases=("aretomo", "aretomo2"),
    )
)


# ---------------------------------------------------------------- pytom-match-pick
def _pytom_to(tilt_deg: float, defocus_handedness: int) -> dict[str, Any]:
    d = as_float(defocus_handedness, "defocus_handedness")
    if d == -1:
        return _canon(as_float(tilt_deg, "tilt_deg"), 0.0, 0.0, -1)
    if d == +1:
        warnings.warn(
            "pytom defocus_handedness +1 is not a rigid geometry (x-term of h=+1, z-term of "
            "h=-1); returning h=+1, exact only at z = 0",
            LossyConversionWarning,
            stacklevel=2,
        )
        return _canon(as_float(tilt_deg, "tilt_deg"), 0.0, 0.0, +1)
    raise InvalidValueError(
        f"defocus_handedness: expected +1 or -1 (0 disables the depth term), got {d}"
    )


def _pytom_from(tilt_deg: float, axis_deg: float, x_tilt_deg: float, hand: int) -> dict[str, Any]:
    h = _h(hand, "hand")
    if h == +1:
        warnings.warn(
            "pytom cannot represent canonical hand +1; writing +1 (exact only at z = 0)",
            LossyConversionWarning,
            stacklevel=2,
        )
    return {"tilt_angles": float(tilt_deg), "defocus_handedness": h}


register(
    Convention(
        name="pytom",
        quantity="tilt",
        program="pytom-match-pick",
        parameters="--tilt-angles (deg), --defocus-handedness {-1, 0, +1}",
        meaning="Δf = Δf_t + z·cosθ' + x·sinθ', θ' = −θ if handedness < 0: −1 ≡ h = −1; "
        "+1 is not rigid",
        sources=(
            Source(
                "pytom-match-pick 0.7",
                "src/pytom_tm/tmjob.py: get_defocus_offsets",
                "SBC-Utrecht/pytom-match-pick",
            ),
        ),
        confidence="high",
        notes="Reported: pytom's RELION-5 reader passes rlnTomoHand through although its −1 "
        "means the opposite of RELION's −1 (design §2.6).",
        to_canonical=_pytom_to,
        from_canonical=_pytom_from,
        aliases=("pytom-match-pick", "pytom_tm"),
    )
)


# ---------------------------------------------------------------- tomogram centres (issue 15)
# One axis of N samples (voxels of a binning-1 volume, or tilt-image pixels): where the tilt
# geometry's rotation centre (volume) or the alignment's zero shift (image) sits, as a 0-based
# coordinate with sample centres at integers. to_canonical(coordinate, n) gives the offset
# from that centre; from_canonical(offset, n) the coordinate. Binned volumes:
# emgeom.tilt.Reconstruction (RELION and Warp apply the rule to the unbinned size).
def _centre_entry(
    name: str,
    program: str,
    rule: str,
    meaning: str,
    sources: tuple[Source, ...],
    *,
    confidence: str = "high",
    notes: str = "",
    shift: float = 0.0,
    aliases: tuple[str, ...] = (),
) -> None:
    def centre(n: Any) -> float:
        nn = as_float(n, "n", positive=True)
        if rule == "floor":
            return float(math.floor(nn / 2))
        if rule == "geometric":
            return (nn - 1) / 2
        return nn / 2

    def to_c(coordinate: float, n: float) -> dict[str, Any]:
        return {"offset": as_float(coordinate, "coordinate") - shift - centre(n)}

    def from_c(offset: float, n: float) -> dict[str, Any]:
        return {"coordinate": as_float(offset, "offset") + centre(n) + shift}

    register(
        Convention(
            name=name,
            quantity="tilt",
            program=program,
            parameters="coordinate along one axis of n samples (0-based unless stated)",
            meaning=meaning,
            sources=sources,
            confidence=confidence,
            notes=notes,
            to_canonical=to_c,
            from_canonical=from_c,
            aliases=aliases,
        )
    )


_RELION_RECON = Source(
    "RELION 5.0",
    "src/jaz/tomography/programs/reconstruct_tomogram.cpp: "
    "TomoBackprojectProgram::getProjectMatrices",
    "3dem/relion",
    "specimen_center = (int(w/2), int(h/2), int(d/2)); tilt_image_center = int(size/2); "
    "output (w/spacing + 0.5, h/spacing + 0.5, d/spacing), matrices / spacing",
)
_RELION_SETPROJ = Source(
    "RELION 5.0",
    "src/jaz/tomography/tomogram.cpp: Tomogram::setProjectionMatrix",
    "3dem/relion",
    "same integer centres for the extraction projection; getProjectionAnglesFromMatrix and "
    "getDepthOffset use the float Tomogram::centre = (w0/2.0, h0/2.0, d0/2.0)",
)
_centre_entry(
    "centre-relion5",
    "RELION 5 tomogram reconstruction and projection",
    "floor",
    "volume centre int(N/2) of rlnTomoSizeX/Y/Z (unbinned), voxel j at unbinned j·binning; "
    "image centre int(n/2)",
    (_RELION_RECON, _RELION_SETPROJ),
    notes="odd sizes: half a pixel from the particles' W/2.0 (centre-relion5-particles); "
    "relion #1137, #1280, PR #1353",
)
_centre_entry(
    "centre-relion5-particles",
    "RELION 5 particles (rlnCenteredCoordinate*Angst)",
    "n/2",
    "rlnCenteredCoordinate = (pos − N/2.0)·pixel, pos in unbinned pixels from voxel 0; with "
    "the integer projection centre a particle c sits at RELION voxel (c/pixel + N/2.0)/binning",
    (
        Source(
            "RELION 5.0",
            "src/jaz/tomography/particle_set.cpp: ParticleSet::getPosition",
            "3dem/relion",
            "de-centres about Tomogram::centre (w0/2.0); origin A_subtomogram·rlnOrigin*Angst "
            "subtracted",
        ),
        _RELION_SETPROJ,
    ),
)
_centre_entry(
    "centre-warp",
    "Warp / WarpTools tomograms and tilt images",
    "n/2",
    "volume centre VolumeDimensionsPhysical/2, image centre ImageDimensionsPhysical/2 (Å from "
    "the corner, sample k at k·pixel): N/2 and n/2",
    (
        Source(
            "Warp 2.0",
            "WarpLib/TiltSeries/TiltSeries.cs: GetPositionInAllTilts",
            "warpem/warp",
            "VolumeCenter = VolumeDimensionsPhysical / 2; ImageCenter = ImageDimensionsPhysical "
            "/ 2 (GetPositionInAllTiltsOld)",
        ),
    ),
)
_centre_entry(
    "centre-aretomo3",
    "AreTomo3 volumes and .aln shifts",
    "n/2",
    "volume voxel k at k − N/2 (back-projection); .aln TX/TY about the image centre n/2",
    (
        Source(
            "AreTomo3 2.x",
            "AreTomo/Recon/GBackProjWbp.cu: mGBackProjWbp",
            "czimaginginstitute/AreTomo3",
            "fX = iX − iVolX/2, fZ = iZ − iVolZ/2; samples the aligned image at "
            "x' + int(n/2) + 0.5",
        ),
        Source(
            "AreTomo3 2.x",
            "AreTomo/Correct/GCorrPatchShift.cu: mGCorrect",
            "czimaginginstitute/AreTomo3",
            "aligned stack: 'Imod coordinate system', origin at Nx·0.5, nearest-neighbour "
            "int(x + 0.5) into the raw image",
        ),
    ),
    confidence="medium",
    notes="AreTomo3 mixes n/2, int(n/2) + 0.5 and rounding between its alignment and "
    "back-projection steps: ≤ 1 px internal offsets not modelled; emgeom uses n/2",
)
_centre_entry(
    "centre-imod",
    "IMOD tilt / newstack (volumes and images)",
    "geometric",
    "the geometric centre (N − 1)/2 (0-based; IMOD's 1-based N/2 + 0.5); tilt.com SHIFT, "
    "SUBSETSTART, OFFSET in unbinned pixels divided by IMAGEBINNED",
    (
        Source(
            "IMOD 4.11",
            "flib/tilt/tilt.f90: inputParameters, backXform",
            "LabShare-Archive/IMOD",
            "xcen = nxb/2. + xtrans + 0.5 (1-based); 'scale dimensions down by binning'",
        ),
    ),
    notes="SHIFT signs from tilt.f90's AdjustOrigin header origin (origx, origy)",
)
_centre_entry(
    "centre-imod-model",
    "IMOD model points (.mod, model2point)",
    "n/2",
    "voxel (i, j, k) centre at model (i + 0.5, j + 0.5, k): x and y are edge-based, z is the "
    "section index (this entry is the x/y rule: centre N/2 in model units)",
    (
        Source(
            "IMOD MatTomo",
            "ImodModel notes (as quoted by MIB's IMOD/Matlab indexing help)",
            "",
            "'IMOD models specify the center of the voxel with Matlab indices (1, 1, 1) as a "
            "point at (0.5, 0.5, 0.0)'",
        ),
        Source(
            "IMOD 4.11",
            "flib/model/model2point.f90",
            "LabShare-Archive/IMOD",
            "prints p_coord unchanged (-float), nint() otherwise",
        ),
    ),
    confidence="medium",
    aliases=("imod-model",),
)
_centre_entry(
    "centre-portal",
    "CZ cryoET Data Portal tomograms and NDJSON annotations",
    "n/2",
    "annotation location in voxels of the tomogram; AreTomo3's N/2 at the implied voxel "
    "size pixel × n_ts / N_tomo (the published voxel_spacing is rounded to 3 decimals)",
    (
        Source(
            "cryoet-data-portal-backend",
            "ingestion_tools/scripts/common/alignment_converter.py",
            "chanzuckerberg/cryoet-data-portal-backend",
            "per_section_alignment_parameters = AreTomo TX/TY, ROT, TILT (from cryoet-alignment)",
        ),
    ),
    confidence="medium",
)
_centre_entry(
    "centre-copick",
    "copick picks (location in Å)",
    "n/2",
    "location = voxel index × voxel spacing (corner-anchored, voxel 0 at 0 Å): centre at "
    "N/2 voxels as the portal tomogram it annotates",
    (
        Source(
            "copick",
            "src/copick/models.py: CopickPoint",
            "copick/copick",
            "location in Å; transformation_ object -> tomogram, particle centre = location + "
            "transformation[:3, 3]",
        ),
    ),
    confidence="medium",
)
