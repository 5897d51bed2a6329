"""The result type of a cross-magnification alignment and its construction (a leaf: imports
only :mod:`emgeom.crossmag._geometry`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from emgeom._validate import as_float, as_matrix
from emgeom.crossmag._geometry import center_of, rotation, scale_rotation_of
from emgeom.errors import InvalidValueError

__all__ = ["AlignmentResult", "compose", "make_result", "not_found"]


@dataclass(frozen=True, eq=False)
class AlignmentResult:
    """Result of :func:`align` (see the module docs for the exact geometry).

    Attributes
    ----------
    affine : ndarray (2, 3)
        ``[x_ref, y_ref] = affine @ [x_mov, y_mov, 1]`` (pixels; x = column, y = row).
    scale : float
        Pixel-size ratio moving/reference (reference pixels per moving pixel), refined by
        maximum likelihood with the calibration as a prior (``align``: σ = half
        ``scale_search``, bounded by it); its error bar is ``scale_sigma``. Median error on
        noisy real-micrograph ×4 pairs within ±0.1–0.25 % (docs/crossmag.md).
    rotation_deg : float
        Rotation θ of the linear part ``scale·R(θ)`` (degrees), refined likewise; error bar
        ``rotation_sigma_deg``.
    center : (float, float)
        ``(x, y)`` reference pixel where the moving centre ``((nx−1)/2, (ny−1)/2)`` lies.
    center_a : (float, float)
        ``center`` minus the reference centre, in Å (x right, y down the rows).
    shift_a : (float, float)
        ``−center_a``: the shift (Å, image axes) that brings the specimen point under the
        moving image's centre to the reference image's centre (the sign of SerialEM's alignment
        shift of the lower-mag buffer).
    found : bool
        ``confidence >= 0.5``; False for blank, constant or featureless content, ambiguous or
        weak peaks (a rival within 10 % is never found), too little overlap, or a
        scale/rotation optimum on the edge of the searched range; then the geometry is the
        best guess and must not be used.
    confidence : float
        The probability that ``center`` lies within 1.5 reference pixels of the truth
        (``align`` and ``find_similarity``), from small logistic models of the quality
        measures — for ``align``: significance, peak ratio, overlap, ``center_sigma``, the
        search-edge flag, ``prediction_ccc`` and ``residual_corr_area`` — fitted on generated
        calibration pairs and shipped with the package (``crossmag/confidence_model.json``;
        features, fit and reliability on held-out pairs in docs/crossmag.md). Held below 0.5
        when a hard gate fails. ``align(refine=False)``: the search's ramps (0.5 at its
        ``found`` thresholds, not calibrated).
    ccc : float
        Pearson CCC of the filtered images over the overlap at the final peak.
    overlap : float
        Fraction of the moving image's (mask) weight that lies on the reference image.
    peak_ratio : float
        Best peak score / second-best peak score in the searched area (≈ 1 = ambiguous; capped
        at 100); with the residual search also the best refined score / that of a rival
        candidate position refined elsewhere (the smaller of the two ratios).
    peak_z : float
        Peak height above the mean of the correlation map in its standard deviations
        (reported only; large-scale content makes it a poor decision measure).
    significance : float
        ``ccc`` divided by ``sqrt(2 ln M · ρ / n)``, the CCC that the best of the M searched
        positions reaches on pure noise (n footprint pixels, ρ the correlation area of the
        filtered noise); ``found`` needs ≥ 1.5, or ≥ 2.0 when the residual search ran (the
        kept CCC is then the best of many correlated hypotheses).
    at_search_edge : bool
        The refined scale or rotation was clipped to the edge of the searched range (the
        optimum lies outside it: widen the range or fix the calibration; SerialEM's error 1).
    reference_pixel_a, moving_pixel_a : float
        Pixel sizes (Å) of the inputs.
    reference_shape, moving_shape : (int, int)
        ``(ny, nx)`` of the inputs.
    binning : int
        Binning of the reference used for the correlation.
    n_evaluations : int
        Correlations computed (search points).
    correlation_map : ndarray or None
        The correlation map over the searched region at the binned sampling (with
        ``return_map=True``).
    map_origin : (int, int)
        ``(x0, y0)`` of ``correlation_map[0, 0]`` in binned reference pixels.
    center_sigma : float
        Standard deviation of ``center`` (reference px): the larger per-axis σ, from the
        curvature of the likelihood of the maximum-likelihood refinement (sandwich estimate
        with the residuals' correlation; see docs/crossmag.md). When the refinement could not
        run, the search's sampling (one binned reference pixel) stands in.
    scale_sigma : float
        Relative standard deviation of ``scale`` (0.002 = 0.2 %); 0 when the scale was held at
        the calibration (``scale_search=0``).
    rotation_sigma_deg : float
        Standard deviation of ``rotation_deg`` (degrees); 0 when held (``rotation_search_deg=0``).
    prediction_ccc : float
        Pearson CCC of the reference with the maximum-likelihood refinement's forward-model
        prediction of it (the moving image area-integrated at the refined pose) over the
        footprint; 0 when the refinement did not run. Low for an unrelated moving image even
        when the filtered ``ccc`` is high.
    residual_corr_area : float
        Correlation area (reference px², ≥ 1) of the refinement's residuals: ≈ 1 when what is
        left is white noise, large when the prediction leaves structure unexplained (a wrong
        or unrelated match); 0 when the refinement did not run.
    """

    affine: NDArray[np.float64]
    scale: float
    rotation_deg: float
    center: tuple[float, float]
    center_a: tuple[float, float]
    shift_a: tuple[float, float]
    found: bool
    confidence: float
    ccc: float
    overlap: float
    peak_ratio: float
    peak_z: float
    at_search_edge: bool
    reference_pixel_a: float
    moving_pixel_a: float
    reference_shape: tuple[int, int]
    moving_shape: tuple[int, int]
    significance: float = 0.0
    binning: int = 1
    n_evaluations: int = 0
    correlation_map: NDArray[np.float32] | None = field(default=None, repr=False)
    map_origin: tuple[int, int] = (0, 0)
    center_sigma: float = 0.0
    scale_sigma: float = 0.0
    rotation_sigma_deg: float = 0.0
    prediction_ccc: float = 0.0
    residual_corr_area: float = 0.0

    def transform_points(self, points_mov: ArrayLike) -> NDArray[np.float64]:
        """Map ``(n, 2)`` moving-image pixel positions ``(x, y)`` to reference pixels."""
        p = np.asarray(points_mov, dtype=np.float64).reshape(-1, 2)
        return p @ self.affine[:, :2].T + self.affine[:, 2]

    def inverse(self) -> AlignmentResult:
        """The same alignment seen from the other side (moving ↔ reference)."""
        lin = self.affine[:, :2]
        inv = np.linalg.inv(lin)
        a = np.hstack([inv, (-inv @ self.affine[:, 2])[:, None]])
        return make_result(
            a,
            reference_shape=self.moving_shape,
            moving_shape=self.reference_shape,
            reference_pixel_a=self.moving_pixel_a,
            moving_pixel_a=self.reference_pixel_a,
            found=self.found,
            confidence=self.confidence,
            ccc=self.ccc,
            overlap=self.overlap,
            peak_ratio=self.peak_ratio,
            peak_z=self.peak_z,
            significance=self.significance,
            at_search_edge=self.at_search_edge,
            # the moving centre's σ seen from the other side (first order: the centre maps
            # through the inverse linear part)
            center_sigma=self.center_sigma / max(self.scale, 1e-300),
            scale_sigma=self.scale_sigma,
            rotation_sigma_deg=self.rotation_sigma_deg,
            prediction_ccc=self.prediction_ccc,
            residual_corr_area=self.residual_corr_area,
        )

    def image_shift(
        self,
        camera_to_image_shift: ArrayLike | None = None,
        *,
        is_to_camera: ArrayLike | None = None,
        binning: float = 1.0,
    ) -> NDArray[np.float64]:
        """Convert the measured offset to microscope image-shift (IS) units.

        Returns the change to add to the reference area's Low Dose image-shift offset (e.g. the
        View offset when the reference is a View and the moving image a Preview) so that the
        reference area becomes centred on the moving image's centre. SerialEM does this in
        ``LowDoseDlg.cpp : CLowDoseDlg::DoSetViewShift``: an image-pixel offset
        ``(dx, dy)`` (x right, **y down the rows**) of the feature from the reference centre
        becomes a camera vector ``(bin·dx, −bin·dy)`` (**the y inversion**: SerialEM's camera
        and specimen coordinates are right-handed with y up) and then
        ``ΔIS = B⁻¹ · (bin·dx, −bin·dy)`` with ``B`` the focus-adjusted IS → camera matrix of
        the reference magnification (``ShiftManager.cpp : FocusAdjustedISToCamera``; the same
        inversion appears in ``ImposeImageShiftOnScope`` callers).

        Note: SerialEM measures ``dx`` from ``width/2`` while emgeom's centre is
        ``(width − 1)/2``; the half-pixel difference is below calibration accuracy.

        **Row order matters.** "y down the rows" means the rows of SerialEM's image *buffer*
        (``serialem.bufferImage``, top row first). An MRC file that SerialEM wrote stores the
        rows flipped (``KStoreMRC.cpp`` ``WriteSection`` → ``KImageStore::convertForWriting``),
        so arrays read from such files (``emgeom.io.read_mrc``) must be aligned as
        ``np.flipud(a)`` — or the y component of this shift flips sign. See
        ``docs/serialem.md`` and :func:`emgeom.serialem.lowdose_offset`, which handles it.

        Parameters
        ----------
        camera_to_image_shift : (2, 2) array_like, optional
            ``B⁻¹``: maps an unbinned camera-pixel vector (SerialEM's right-handed, y-up
            camera coordinates) to IS units.
        is_to_camera : (2, 2) array_like, optional
            SerialEM's stored calibration ``B`` (IS units → unbinned camera pixels); give
            exactly one of the two.
        binning : float
            Camera binning of the reference image (unbinned pixels per reference pixel).

        Returns
        -------
        ndarray (2,)
            ``(ΔIS_x, ΔIS_y)`` in image-shift units.
        """
        if (camera_to_image_shift is None) == (is_to_camera is None):
            raise InvalidValueError(
                "image_shift: give exactly one of camera_to_image_shift and is_to_camera"
            )
        if camera_to_image_shift is not None:
            m = as_matrix(camera_to_image_shift, "camera_to_image_shift", (2, 2))
        else:
            b = as_matrix(is_to_camera, "is_to_camera", (2, 2))
            if abs(np.linalg.det(b)) < 1e-300:
                raise InvalidValueError("is_to_camera: matrix is singular")
            m = np.asarray(np.linalg.inv(b), dtype=np.float64)
        bin_ = as_float(binning, "binning", positive=True)
        c = center_of(self.reference_shape)
        d = np.asarray(self.center) - c
        cam = np.array([bin_ * d[0], -bin_ * d[1]])
        return np.asarray(m @ cam, dtype=np.float64)


def make_result(
    affine: NDArray[np.float64],
    *,
    reference_shape: tuple[int, int],
    moving_shape: tuple[int, int],
    reference_pixel_a: float,
    moving_pixel_a: float,
    result_cls: type[AlignmentResult] | None = None,
    **kw: Any,
) -> AlignmentResult:
    """Build a result from its affine: ``center``, ``center_a`` and ``shift_a`` are derived here
    (the one place), ``scale``/``rotation_deg`` too unless given exactly in ``kw``.
    """
    lin = affine[:, :2]
    c_mov = center_of(moving_shape)
    center = lin @ c_mov + affine[:, 2]
    d = (center - center_of(reference_shape)) * reference_pixel_a
    sc, th = scale_rotation_of(lin)
    fields: dict[str, Any] = {"scale": sc, "rotation_deg": th}
    fields.update(kw)
    cls = AlignmentResult if result_cls is None else result_cls
    return cls(
        affine=affine,
        center=(float(center[0]), float(center[1])),
        center_a=(float(d[0]), float(d[1])),
        shift_a=(float(-d[0]), float(-d[1])),
        reference_pixel_a=reference_pixel_a,
        moving_pixel_a=moving_pixel_a,
        reference_shape=reference_shape,
        moving_shape=moving_shape,
        **fields,
    )


def compose(res_ab: AlignmentResult, res_bc: AlignmentResult) -> AlignmentResult:
    """Chain two alignments: ``res_ab`` maps A (moving) → B (reference), ``res_bc`` maps
    B (moving) → C (reference); the result maps A → C exactly (``affine_bc ∘ affine_ab``).

    This is SerialEM's two-step route for pixel ratios ≥ 20 (Preview → middle mag → View,
    ``ComplexTasks.cpp : FindLowDoseShiftOffset``). ``found`` needs both; the quality measures
    are the weaker of the two.
    """
    if not isinstance(res_ab, AlignmentResult) or not isinstance(res_bc, AlignmentResult):
        raise InvalidValueError("compose: expected two AlignmentResult objects")
    if tuple(res_ab.reference_shape) != tuple(res_bc.moving_shape):
        raise InvalidValueError(
            "compose: res_ab's reference must be res_bc's moving image "
            f"(shapes {res_ab.reference_shape} vs {res_bc.moving_shape})"
        )
    a1, a2 = res_ab.affine, res_bc.affine
    a = np.hstack([a2[:, :2] @ a1[:, :2], (a2[:, :2] @ a1[:, 2] + a2[:, 2])[:, None]])
    return make_result(
        a,
        reference_shape=res_bc.reference_shape,
        moving_shape=res_ab.moving_shape,
        reference_pixel_a=res_bc.reference_pixel_a,
        moving_pixel_a=res_ab.moving_pixel_a,
        found=res_ab.found and res_bc.found,
        confidence=min(res_ab.confidence, res_bc.confidence),
        ccc=min(res_ab.ccc, res_bc.ccc),
        overlap=min(res_ab.overlap, res_bc.overlap),
        peak_ratio=min(res_ab.peak_ratio, res_bc.peak_ratio),
        peak_z=min(res_ab.peak_z, res_bc.peak_z),
        significance=min(res_ab.significance, res_bc.significance),
        at_search_edge=res_ab.at_search_edge or res_bc.at_search_edge,
        n_evaluations=res_ab.n_evaluations + res_bc.n_evaluations,
        # independent errors, first order: A's centre error carried into C by B → C's scale
        center_sigma=math.hypot(res_bc.center_sigma, res_bc.scale * res_ab.center_sigma),
        scale_sigma=math.hypot(res_ab.scale_sigma, res_bc.scale_sigma),
        rotation_sigma_deg=math.hypot(res_ab.rotation_sigma_deg, res_bc.rotation_sigma_deg),
        prediction_ccc=min(res_ab.prediction_ccc, res_bc.prediction_ccc),
        residual_corr_area=max(res_ab.residual_corr_area, res_bc.residual_corr_area),
    )


def not_found(
    ref_shape: tuple[int, int],
    mov_shape: tuple[int, int],
    p_r: float,
    p_m: float,
    scale: float,
    theta: float,
    center: NDArray[np.float64],
    result_cls: type[AlignmentResult] | None = None,
    **extra: Any,
) -> AlignmentResult:
    """The "not found" result: the nominal geometry ``scale·R(theta)`` placing the moving centre
    at ``center``, ``found=False`` and every quality measure at its worst.
    """
    lin = scale * rotation(theta)
    a = np.hstack([lin, (center - lin @ center_of(mov_shape))[:, None]])
    extra.setdefault("center_sigma", float(max(ref_shape)))  # nothing is known
    return make_result(
        a,
        reference_shape=ref_shape,
        moving_shape=mov_shape,
        reference_pixel_a=p_r,
        moving_pixel_a=p_m,
        result_cls=result_cls,
        scale=float(scale),
        rotation_deg=float(theta),
        found=False,
        confidence=0.0,
        ccc=0.0,
        overlap=0.0,
        peak_ratio=1.0,
        peak_z=0.0,
        at_search_edge=False,
        **extra,
    )
