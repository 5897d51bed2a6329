"""Helpers of ``emgeom tilt remap``: reconstruction specs, particle tables, report, plot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from emgeom._validate import require
from emgeom.errors import InvalidValueError
from emgeom.io.atomic import atomic_output
from emgeom.io.particles import FORMAT_FRAMES, guess_format, read_particles, write_particles
from emgeom.tilt import (
    Reconstruction,
    orientations_from_voxels,
    orientations_to_voxels,
    particles_to_voxels,
    voxels_to_particles,
)

__all__ = [
    "SPEC_HELP",
    "dims",
    "reconstruction",
    "remap_plot",
    "source_picks",
    "target_report",
    "write_remapped",
]

_REC_PROGRAMS = ("relion5", "imod", "warp", "aretomo3", "portal")
SPEC_HELP = (
    "PROGRAM:FILE[,FILE2][,key=value...] with PROGRAM relion5 (tomograms.star; tomo=, image=, "
    "binning=), imod (tilt.com[,TS.rec]; pixel=, image=, rotation=rotx|none|flipyz, tlt=, xf=, "
    "xtilt=), warp (TS.xml; image=, voxel=, volume=, full= or settings=), "
    "aretomo3 (TS.aln; pixel=, vol_z=, at_bin=, volume=, flip=0|1) "
    "or portal (alignment or run JSON; tomogram=, volume=). "
    "Sizes are NXxNY[xNZ]; full= is Warp's VolumeDimensionsPhysical in Å."
)


def dims(text: str, n: int, key: str) -> tuple[float, ...]:
    try:
        vals = tuple(float(v) for v in text.lower().split("x"))
    except ValueError:
        vals = ()
    if len(vals) != n:
        raise InvalidValueError(
            f"{key}: expected {n} sizes like {'x'.join(['4096'] * n)}, got {text!r}"
        )
    return vals


class _Spec:
    """``PROGRAM:FILE[,FILE][,key=value]``: the files and the keys, consumed one by one."""

    def __init__(self, spec: str, option: str) -> None:
        prog, sep, rest = spec.partition(":")
        prog = prog.lower().replace("-", "")
        self.program = {"relion": "relion5", "aretomo": "aretomo3"}.get(prog, prog)
        self.spec, self.option = spec, option
        if not sep or self.program not in _REC_PROGRAMS or not rest:
            raise InvalidValueError(
                f"{option}: expected {SPEC_HELP.split(' with ')[0]}, got {spec!r}"
            )
        self.files = [Path(p) for p in rest.split(",") if p and "=" not in p]
        self.kv = dict(p.split("=", 1) for p in rest.split(",") if "=" in p)
        if not self.files:
            raise InvalidValueError(f"{option}: no file in {spec!r}")

    def text(self, key: str, default: str | None = None) -> str | None:
        return self.kv.pop(key, default)

    def num(self, key: str) -> float | None:
        if key not in self.kv:
            return None
        try:
            return float(self.kv.pop(key))
        except ValueError:
            raise InvalidValueError(
                f"{self.option}: {key}= expects a number in {self.spec!r}"
            ) from None

    def need(self, key: str, what: str) -> float:
        v = self.num(key)
        if v is None:
            raise InvalidValueError(f"{self.option}: {self.program} needs {key}=<{what}>")
        return v

    def dims(self, key: str, n: int) -> tuple[float, ...] | None:
        return None if key not in self.kv else dims(self.kv.pop(key), n, f"{self.option} {key}=")

    def image(self) -> tuple[int, int] | None:
        d = self.dims("image", 2)
        return None if d is None else (int(d[1]), int(d[0]))

    def volume(self) -> tuple[int, int, int] | None:
        d = self.dims("volume", 3)
        return None if d is None else (int(d[0]), int(d[1]), int(d[2]))


def reconstruction(spec: str, option: str) -> Any:
    """A :class:`~emgeom.tilt.Reconstruction` from ``PROGRAM:FILE[,FILE][,key=value]``."""
    sp = _Spec(spec, option)
    path = sp.files[0]
    if sp.program == "relion5":
        rec = Reconstruction.from_relion(
            path, sp.text("tomo"), image_shape=sp.image(), binning=sp.num("binning")
        )
    elif sp.program == "imod":
        rec = Reconstruction.from_imod(
            path,
            sp.files[1] if len(sp.files) > 1 else None,
            pixel_size_a=sp.num("pixel"),
            image_shape=sp.image(),
            rotation=sp.text("rotation", "rotx") or "rotx",
            tlt=sp.text("tlt"),
            xf=sp.text("xf"),
            xtilt=sp.text("xtilt"),
        )
    elif sp.program == "warp":
        vs = sp.need("voxel", "tomogram voxel size in Å")
        img = sp.image()
        if img is None:
            raise InvalidValueError(f"{option}: warp needs image=NXxNY (tilt-image size)")
        rec = Reconstruction.from_warp(
            path,
            image_shape=img,
            voxel_size_a=vs,
            volume_shape=sp.volume(),
            full_shape_a=sp.dims("full", 3),
            settings=sp.text("settings"),
        )
    elif sp.program == "aretomo3":
        px = sp.need("pixel", "tilt-series pixel in Å")
        vz = sp.num("vol_z")
        rec = Reconstruction.from_aretomo(
            path,
            pixel_size_a=px,
            volume_shape=sp.volume(),
            vol_z=None if vz is None else int(vz),
            at_bin=sp.num("at_bin") or 1.0,
            flip_volume=(sp.text("flip", "1") or "1") not in ("0", "false", "no"),
        )
    else:
        tid = sp.num("tomogram")
        rec = Reconstruction.from_portal(
            path,
            tomogram=None if tid is None else int(tid),
            volume_shape=sp.volume(),
            image_shape=sp.image(),
            pixel_size_a=sp.num("pixel"),
        )
    if sp.kv:
        raise InvalidValueError(
            f"{option}: unknown keys {sorted(sp.kv)} for {sp.program} in {spec!r}"
        )
    return rec


def source_picks(
    picks: Path,
    picks_format: str | None,
    coords_angpix: float | None,
    tomo: str | None,
    from_: str,
    src: Any,
) -> tuple[Any, Any, Any]:
    """The particle table (one tomogram), its voxels in ``src`` and orientations."""
    table = read_particles(picks, picks_format, coords_angpix=coords_angpix)
    several = table.tomo_names is not None and len(set(table.tomo_names)) > 1
    if tomo is None and several:
        # default: the tomogram named in a relion5 --from spec (tomo=...)
        tomo = next((p[5:] for p in from_.split(",") if p.startswith("tomo=")), None)
    if tomo is not None:
        table = table.select(tomo)
    elif several:
        raise InvalidValueError(
            f"--tomo: {picks} holds picks of {sorted(set(table.tomo_names or []))}; choose one"
        )
    vox = particles_to_voxels(table.coordinates, table.frame, src)
    mats = None
    if table.matrices is not None:
        mats = orientations_to_voxels(table.matrices, table.frame, src)
    return table, vox, mats


def write_remapped(
    out: Path, out_format: str | None, table: Any, tgt: Any, r: Any, force: bool
) -> str:
    """Write the mapped picks in the output's format (by name); returns the format."""
    form = (out_format or guess_format(out)).lower()
    form = "relion5" if form == "relion" else form
    if form == "relion5" and out_format is None and tgt.program != "relion5":
        form = "warp"  # a .star for a non-RELION tomogram: voxel coordinates (Warp style)
    if form not in FORMAT_FRAMES:
        raise InvalidValueError(f"--format: expected one of {tuple(FORMAT_FRAMES)}, got {form!r}")
    frame = FORMAT_FRAMES[form]
    coords = voxels_to_particles(r.points, frame, tgt)
    m_out = None if r.matrices is None else orientations_from_voxels(r.matrices, frame, tgt)
    names = table.tomo_names
    if names is None and form in ("relion5", "warp"):
        names = [out.stem] * len(table)
    write_particles(
        out,
        form,
        coords,
        matrices=None if form == "imod" else m_out,
        tomo_names=names,
        pixel_size_a=tgt.pixel_size_a if form == "relion5" else tgt.voxel_size_a,
        force=force,
    )
    return form


def remap_plot(path: Path, src: Any, tgt: Any, vox: Any, r: Any, force: bool) -> None:
    """Picks projected on the most tilted paired tilt: source model vs target model."""
    require("matplotlib", "plot")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = int(np.argmax(np.abs(r.tilt_deg)))
    i, j = r.tilt_pairs[k]
    before = src.project(vox)[i]
    after = tgt.project(r.points)[j]
    fig, ax = plt.subplots(figsize=(6, 6))
    ax.scatter(
        before[:, 0],
        before[:, 1],
        s=30,
        facecolors="none",
        edgecolors="C0",
        label=f"source ({src.program})",
    )
    ax.scatter(after[:, 0], after[:, 1], s=8, color="C3", label=f"mapped ({tgt.program})")
    if src.image_shape is not None:
        ny, nx = src.image_shape
        ax.set_xlim(-0.5, nx - 0.5)
        ax.set_ylim(ny - 0.5, -0.5)
    ax.set_aspect("equal")
    ax.set_xlabel("x (raw tilt-image px)")
    ax.set_ylabel("y (raw tilt-image px)")
    ax.set_title(
        f"tilt {r.tilt_deg[k]:.1f}°: rms {r.residual_per_tilt_px[k]:.3g} px "
        f"(all tilts {r.residual_px:.3g} px)"
    )
    ax.legend(loc="upper right")
    with atomic_output(path, force=force) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def target_report(tgt: Any, out: Path, form: str, r: Any, caught: list[Any]) -> dict[str, Any]:
    """The JSON report of one target: residual per tilt, exactness, transform, warnings."""
    return {
        "target": tgt.summary(),
        "written": str(out),
        "format": form,
        "exact": r.exact,
        "model": r.model,
        "residual_px": r.residual_px,
        "residual_max_px": r.residual_max_px,
        "per_tilt": [
            {"tilt_deg": float(t), "rms_px": float(e), "fitted": bool(f)}
            for t, e, f in zip(r.tilt_deg, r.residual_per_tilt_px, r.tilts_fitted, strict=True)
        ],
        "n_outside": r.n_outside,
        "transform": r.transform,
        "warnings": [str(w.message) for w in caught],
        "notes": list(r.notes),
    }
