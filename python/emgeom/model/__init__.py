"""The canonical tilt-series model: the leaf layer every other package builds on.

Dependencies point one way: model → io → workflows (:mod:`emgeom.tilt`, ...) → cli. Nothing here
imports :mod:`emgeom.io` or a workflow, and this ``__init__`` imports nothing, so the readers in
:mod:`emgeom.io` import the model without executing :mod:`emgeom.tilt` (which re-exports both
the model and the readers). Users reach these names through :mod:`emgeom.tilt`.

* :mod:`emgeom.model.geometry`: :class:`~emgeom.model.geometry.TiltGeometry`, rotations,
  projection and bulk per-particle defocus.
* :mod:`emgeom.model.centres`: centre conventions (voxel ``N/2``, floor, IMOD).
* :mod:`emgeom.model.fields`: validation of the model's fields.
* :mod:`emgeom.model.rotation`: particle orientations (RELION Euler angles ↔ matrices).
* :mod:`emgeom.model.hand_samples`: measured defocus samples and the slopes each hand predicts.
"""
