"""Similarity-registration conventions: how peers report rotation, scale and shift.

Canonical form (emgeom, :func:`emgeom.crossmag.find_similarity` /
:class:`emgeom.crossmag.AlignmentResult`): ``[x_ref, y_ref] = A @ [x_mov, y_mov, 1]`` with linear
part ``scale·R(θ)``, θ (``rotation_deg``) clockwise as displayed (row 0 on top), ``scale`` =
reference pixels per moving pixel; ``center_offset`` = where the moving image's centre lands
minus the reference centre, ``(dx, dy)`` in reference pixels (x = column, y = row). Each entry
converts one peer's numbers to ``{"rotation_deg", "scale", "center_offset"}`` and back. Evidence:
``docs/conventions.md`` (log-polar section) and ``tests/crossmag/test_similarity.py``.
"""

from __future__ import annotations

from typing import Any

from emgeom._validate import as_float
from emgeom.conventions._registry import Convention, Source, register

__all__: list[str] = []


def _canon(rot: float, scale: float, dx: float, dy: float) -> dict[str, Any]:
    return {"rotation_deg": rot, "scale": scale, "center_offset": (dx, dy)}


# ---------------------------------------------------------------- imreg_dft
def _ird_to(angle: float, scale: float, tvec: Any) -> dict[str, Any]:
    ty, tx = (as_float(v, "tvec") for v in tvec)
    return _canon(-as_float(angle, "angle"), as_float(scale, "scale", positive=True), tx, ty)


def _ird_from(rotation_deg: float, scale: float, center_offset: Any) -> dict[str, Any]:
    dx, dy = (float(v) for v in center_offset)
    return {"angle": -float(rotation_deg), "scale": float(scale), "tvec": (dy, dx)}


register(
    Convention(
        name="imreg_dft",
        quantity="similarity",
        program="imreg_dft 2.0 (similarity)",
        parameters="dict: angle (deg), scale, tvec = (ty, tx) pixels; similarity(im0, im1)",
        meaning="θ = −angle; scale = scale; center_offset = (tx, ty)",
        sources=(
            Source(
                "imreg_dft 2.0.0",
                "src/imreg_dft/imreg.py: similarity, transform_img",
                "matejak/imreg_dft",
                "returns the transform that maps im1 (moving) onto im0 (reference)",
            ),
            Source(
                "imreg_dft 2.0.0",
                "tests/regressiontests/Makefile (commit 4023e9e)",
                "matejak/imreg_dft",
                "published answers: sample1→sample3 angle −30, scale 1.25; tiling big→small "
                "(156, 137, 40.5, 0.51); emgeom measures θ = +30.07, scale 1.2497 and "
                "θ = −40.8, scale 0.515, centre offset (155.7, 137.2)",
            ),
        ),
        confidence="high",
        notes="Measured on imreg_dft's own example images (tests/crossmag/test_similarity.py); "
        "imreg_dft's angle is counter-clockwise as displayed.",
        to_canonical=_ird_to,
        from_canonical=_ird_from,
    )
)


# ---------------------------------------------------------------- scikit-image gallery recipe
def _sk_to(recovered_angle: float, shift_scale: float) -> dict[str, Any]:
    s = as_float(shift_scale, "shift_scale", positive=True)
    return _canon(as_float(recovered_angle, "recovered_angle"), 1.0 / s, float("nan"), float("nan"))


def _sk_from(rotation_deg: float, scale: float, center_offset: Any = None) -> dict[str, Any]:
    return {"recovered_angle": float(rotation_deg), "shift_scale": 1.0 / float(scale)}


register(
    Convention(
        name="skimage_recipe",
        quantity="similarity",
        program="scikit-image 0.26 gallery: register rotation and scaling",
        parameters="recovered_angle (deg), shift_scale (from log-polar phase_cross_correlation)",
        meaning="θ = recovered_angle; scale = 1/shift_scale (no translation)",
        sources=(
            Source(
                "scikit-image 0.26",
                "doc/examples/registration/plot_register_rotation.py",
                "scikit-image/scikit-image",
                "phase_cross_correlation(lp(reference), lp(moving)); shift_scale is the "
                "magnification of the moving image",
            ),
            Source(
                "emgeom",
                "benches/bench_logpolar.py: test_fm_skimage_gallery_recipe",
                note="measured +16.65° / 0.7730 for θ = 17°, scale 1.3",
            ),
        ),
        confidence="medium",
        notes="The sign was measured on one pair (θ = 17°) through the recipe as published; the "
        "recipe's own example rotates with skimage.transform.rotate (counter-clockwise) and "
        "its output sign depends on the argument order of phase_cross_correlation.",
        to_canonical=_sk_to,
        from_canonical=_sk_from,
    )
)
