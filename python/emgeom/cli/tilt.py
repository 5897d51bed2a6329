"""``emgeom tilt``: per-particle defocus, format conversion and explanation of tilt series."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from emgeom.cli._common import echo_json
from emgeom.errors import InvalidValueError

app = typer.Typer(
    help="Tilt-series geometry: per-particle defocus, convert Warp/RELION/IMOD/AreTomo, "
    "explain each program's handedness flags.",
    no_args_is_help=True,
)

_FORMATS = ("warp", "relion", "imod", "aretomo", "portal")


def _detect(path: Path) -> str:
    suf = path.suffix.lower()
    if suf == ".xml":
        return "warp"
    if suf == ".star":
        return "relion"
    if suf == ".aln":
        return "aretomo"
    if suf in (".tlt", ".rawtlt"):
        return "imod"
    if suf == ".json":
        return "portal"
    raise InvalidValueError(
        f"{path}: cannot tell the format from the extension; use --from {{{','.join(_FORMATS)}}}"
    )


def _read(
    fmt: str,
    path: Path,
    *,
    tomo_name: str | None,
    project_dir: Path | None,
    xf: Path | None,
    defocus: Path | None,
    ctf: Path | None,
    pixel_size_a: float | None,
    invert: bool,
    axis_fixed: bool,
) -> dict[str, Any]:
    """Read ``path`` as ``fmt``; returns name → TiltGeometry."""
    from emgeom import tilt

    fmt = fmt.lower()
    if fmt == "warp":
        return {path.stem: tilt.read_warp(path)}
    if fmt == "relion":
        if tomo_name is not None:
            return {tomo_name: tilt.read_relion(path, tomo_name, project_dir=project_dir)}
        return dict(tilt.read_relion_tomograms(path, project_dir=project_dir))
    if fmt == "imod":
        return {
            path.stem: tilt.read_imod(
                path, xf=xf, defocus=defocus, pixel_size_a=pixel_size_a, invert=invert
            )
        }
    if fmt == "aretomo":
        if ctf is None:
            sibling = path.with_name(path.stem + "_CTF.txt")
            ctf = sibling if sibling.exists() else None
        return {
            path.stem: tilt.read_aretomo(
                path, ctf=ctf, pixel_size_a=pixel_size_a, axis_refined=not axis_fixed
            )
        }
    if fmt == "portal":
        from emgeom.io.portal import read_portal_alignment

        g, _facts = read_portal_alignment(path, pixel_size_a=pixel_size_a)
        return {path.stem: g}
    raise InvalidValueError(f"--from: expected one of {_FORMATS}, got {fmt!r}")


TomoOpt = Annotated[str | None, typer.Option("--tomo-name", help="Tomogram in a RELION star.")]
ProjOpt = Annotated[
    Path | None,
    typer.Option("--project-dir", help="RELION project directory for relative paths."),
]
XfOpt = Annotated[Path | None, typer.Option("--xf", help="IMOD .xf (with a .tlt input).")]
DefOpt = Annotated[Path | None, typer.Option("--defocus", help="IMOD ctfplotter .defocus (nm).")]
CtfOpt = Annotated[
    Path | None, typer.Option("--ctf", help="AreTomo3 _CTF.txt (default: <stem>_CTF.txt).")
]
PxOpt = Annotated[
    float | None, typer.Option("--pixel-size", help="Tilt-series pixel size, Å (IMOD/AreTomo).")
]
InvOpt = Annotated[
    bool, typer.Option("--invert", help="IMOD: ctfphaseflip needed -invert (hand -1).")
]
FixOpt = Annotated[
    bool, typer.Option("--axis-fixed", help="AreTomo3 ran with -TiltAxis a -1 (axis fixed).")
]


@app.command("explain")
def explain(
    files: Annotated[list[Path], typer.Argument(help="Warp .xml, RELION .star, .aln or .tlt.")],
    tomo_name: TomoOpt = None,
    project_dir: ProjOpt = None,
    xf: XfOpt = None,
    defocus: DefOpt = None,
    ctf: CtfOpt = None,
    pixel_size_a: PxOpt = None,
    invert: InvOpt = False,
    axis_fixed: FixOpt = False,
    full: Annotated[bool, typer.Option("--full", help="Print every per-tilt value.")] = False,
) -> None:
    """Print the canonical geometry of each file and every program's flags for it (JSON)."""
    out: dict[str, Any] = {}
    for f in files:
        geoms = _read(
            _detect(f),
            f,
            tomo_name=tomo_name,
            project_dir=project_dir,
            xf=xf,
            defocus=defocus,
            ctf=ctf,
            pixel_size_a=pixel_size_a,
            invert=invert,
            axis_fixed=axis_fixed,
        )
        for name, g in geoms.items():
            if full:
                info = g.summary()
            else:
                t = g.tilt_deg
                info = {
                    "source": g.source,
                    "n_tilts": g.n_tilts,
                    "tilt_deg_range": [float(t.min()), float(t.max())],
                    "axis_deg_median": float(np.median(g.axis_deg)),
                    "defocus_a_range": [float(g.defocus_a.min()), float(g.defocus_a.max())],
                    "hand": g.hand,
                    "defocus_slope": g.defocus_slope,
                    "flags": {k: v for k, v in g.program_flags().items() if k != "warp_Angles"},
                    "notes": list(g.notes),
                }
            out[f"{f}:{name}" if len(geoms) > 1 else str(f)] = info
    echo_json(out)


def _ints(text: str, n: int, option: str, what: str) -> tuple[int, ...]:
    """``"a,b,c"`` → ``n`` integers, or a clear error naming the option."""
    try:
        vals = tuple(int(v) for v in text.split(","))
    except ValueError:
        vals = ()
    if len(vals) != n:
        raise InvalidValueError(f"{option}: expected {what} integers, got {text!r}")
    return vals


@app.command("convert")
def convert(
    source: Annotated[Path, typer.Argument(help="Input file.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Output file.")],
    from_: Annotated[
        str | None,
        typer.Option(
            "--from", help="warp, relion, imod, aretomo or portal (default: by extension)."
        ),
    ] = None,
    to: Annotated[str, typer.Option("--to", help="relion, relion4, warp or json.")] = "relion",
    tomo_name: TomoOpt = None,
    project_dir: ProjOpt = None,
    xf: XfOpt = None,
    defocus: DefOpt = None,
    ctf: CtfOpt = None,
    pixel_size_a: PxOpt = None,
    invert: InvOpt = False,
    axis_fixed: FixOpt = False,
    volume_shape: Annotated[
        str | None,
        typer.Option("--volume-shape", help="nx,ny,nz in tilt-series pixels (RELION needs it)."),
    ] = None,
    image_shape: Annotated[
        str | None,
        typer.Option(
            "--image-shape",
            help="ny,nx of the tilt images in pixels: --to relion4 then writes full matrices "
            "(image shifts kept) instead of rotation-only ones.",
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite the output.")] = False,
) -> None:
    """Convert one tilt series between Warp XML, RELION 5/4 star, IMOD and AreTomo files.

    The canonical hand is carried over: e.g. Warp AreAnglesInverted=False becomes RELION
    rlnTomoHand +1 (WarpTools' own export writes -1; see docs/conventions.md).
    """
    from emgeom import tilt

    fmt = from_ or _detect(source)
    geoms = _read(
        fmt,
        source,
        tomo_name=tomo_name,
        project_dir=project_dir,
        xf=xf,
        defocus=defocus,
        ctf=ctf,
        pixel_size_a=pixel_size_a,
        invert=invert,
        axis_fixed=axis_fixed,
    )
    if len(geoms) != 1:
        raise InvalidValueError(f"--tomo-name: {source} holds {sorted(geoms)}; choose one")
    name, g = next(iter(geoms.items()))
    if volume_shape is not None:
        g = g.replace(volume_shape=_ints(volume_shape, 3, "--volume-shape", "nx,ny,nz"))
    if g.pixel_size_a is None and pixel_size_a is not None:
        g = g.replace(pixel_size_a=pixel_size_a)
    target = to.lower()
    shape2: tuple[int, int] | None = None
    if image_shape is not None:
        ny_i, nx_i = _ints(image_shape, 2, "--image-shape", "ny,nx")
        if target != "relion4":
            raise InvalidValueError("--image-shape: only used with --to relion4")
        shape2 = (ny_i, nx_i)
    if target in ("relion", "relion5", "relion4"):
        tilt.to_relion(
            g,
            output,
            tomo_name=tomo_name or name,
            layout="relion4" if target == "relion4" else "relion5",
            image_shape=shape2,
            force=force,
        )
    elif target == "warp":
        tilt.to_warp(g, output, force=force)
    elif target == "json":
        import json

        from emgeom.cli._common import to_jsonable
        from emgeom.io._atomic import atomic_output

        with atomic_output(output, force=force) as tmp:
            tmp.write_text(json.dumps(to_jsonable(g.summary()), indent=2))
    else:
        raise InvalidValueError(f"--to: expected relion, relion4, warp or json, got {to!r}")
    echo_json({"written": str(output), "hand": g.hand, "flags": g.program_flags()})


@app.command("defocus")
def defocus_cmd(
    relion: Annotated[Path, typer.Option("--relion", help="RELION tomograms.star.")],
    particles: Annotated[Path, typer.Option("--particles", help="RELION 5 particle star.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Output particle star.")],
    project_dir: ProjOpt = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite the output.")] = False,
) -> None:
    """Add per-tilt defocus (_emgeomTiltDefocusU/V, Å, lists in tilt order) to a particle star."""
    from emgeom.io._tilt_star import write_star
    from emgeom.io.relion_tomo import add_particle_defocus, read_relion_tomograms

    geoms = read_relion_tomograms(relion, project_dir=project_dir)
    blocks = add_particle_defocus(particles, geoms)
    write_star(output, list(blocks.values()), force=force, header="per-tilt defocus by emgeom")
    pb = blocks.get("particles") or next(b for b in blocks.values() if b.is_loop)
    echo_json(
        {
            "written": str(output),
            "particles": len(pb.rows),
            "tomograms": {k: {"n_tilts": g.n_tilts, "hand": g.hand} for k, g in geoms.items()},
        }
    )


# Handedness checks and audits (issue 5): `emgeom tilt check-hand`, `emgeom tilt audit`.
from emgeom.cli import hand as _hand  # noqa: E402

app.command("check-hand")(_hand.check_hand_cmd)
app.command("audit")(_hand.audit_cmd)


# ---------------------------------------------------------------------------- remap
_REC_PROGRAMS = ("relion5", "imod", "warp", "aretomo3", "portal")
_SPEC_HELP = (
    "PROGRAM:FILE[,FILE2][,key=value...] with PROGRAM relion5 (tomograms.star; tomo=, image=, "
    "binning=), imod (tilt.com[,TS.rec]; pixel=, image=, rotation=rotx|none|flipyz, tlt=, xf=, "
    "xtilt=), warp (TS.xml; image=, voxel=, volume=, full= or settings=), "
    "aretomo3 (TS.aln; pixel=, vol_z=, at_bin=, volume=, flip=0|1) "
    "or portal (alignment or run JSON; tomogram=, volume=). "
    "Sizes are NXxNY[xNZ]; full= is Warp's VolumeDimensionsPhysical in Å."
)


def _dims(text: str, n: int, key: str) -> tuple[float, ...]:
    try:
        vals = tuple(float(v) for v in text.lower().split("x"))
    except ValueError:
        vals = ()
    if len(vals) != n:
        raise InvalidValueError(
            f"{key}: expected {n} sizes like {'x'.join(['4096'] * n)}, got {text!r}"
        )
    return vals


def _reconstruction(spec: str, option: str) -> Any:
    """A :class:`~emgeom.tilt.Reconstruction` from ``PROGRAM:FILE[,FILE][,key=value]``."""
    from emgeom.tilt import Reconstruction

    prog, sep, rest = spec.partition(":")
    prog = prog.lower().replace("-", "")
    prog = {"relion": "relion5", "aretomo": "aretomo3"}.get(prog, prog)
    if not sep or prog not in _REC_PROGRAMS or not rest:
        raise InvalidValueError(f"{option}: expected {_SPEC_HELP.split(' with ')[0]}, got {spec!r}")
    files = [p for p in rest.split(",") if p and "=" not in p]
    kv = dict(p.split("=", 1) for p in rest.split(",") if "=" in p)
    if not files:
        raise InvalidValueError(f"{option}: no file in {spec!r}")
    path = Path(files[0])

    def num(key: str) -> float | None:
        if key not in kv:
            return None
        try:
            return float(kv.pop(key))
        except ValueError:
            raise InvalidValueError(f"{option}: {key}= expects a number in {spec!r}") from None

    def image() -> tuple[int, int] | None:
        if "image" not in kv:
            return None
        nx, ny = _dims(kv.pop("image"), 2, f"{option} image=")
        return int(ny), int(nx)

    def volume() -> tuple[int, int, int] | None:
        if "volume" not in kv:
            return None
        v = _dims(kv.pop("volume"), 3, f"{option} volume=")
        return int(v[0]), int(v[1]), int(v[2])

    if prog == "relion5":
        rec = Reconstruction.from_relion(
            path, kv.pop("tomo", None), image_shape=image(), binning=num("binning")
        )
    elif prog == "imod":
        rot = kv.pop("rotation", "rotx")
        rec = Reconstruction.from_imod(
            path,
            files[1] if len(files) > 1 else None,
            pixel_size_a=num("pixel"),
            image_shape=image(),
            rotation=rot,
            tlt=kv.pop("tlt", None),
            xf=kv.pop("xf", None),
            xtilt=kv.pop("xtilt", None),
        )
    elif prog == "warp":
        vs = num("voxel")
        if vs is None:
            raise InvalidValueError(f"{option}: warp needs voxel=<tomogram voxel size in Å>")
        img = image()
        if img is None:
            raise InvalidValueError(f"{option}: warp needs image=NXxNY (tilt-image size)")
        full = _dims(kv.pop("full"), 3, f"{option} full=") if "full" in kv else None
        rec = Reconstruction.from_warp(
            path,
            image_shape=img,
            voxel_size_a=vs,
            volume_shape=volume(),
            full_shape_a=full,
            settings=kv.pop("settings", None),
        )
    elif prog == "aretomo3":
        px = num("pixel")
        if px is None:
            raise InvalidValueError(f"{option}: aretomo3 needs pixel=<tilt-series pixel in Å>")
        vz = num("vol_z")
        rec = Reconstruction.from_aretomo(
            path,
            pixel_size_a=px,
            volume_shape=volume(),
            vol_z=None if vz is None else int(vz),
            at_bin=num("at_bin") or 1.0,
            flip_volume=kv.pop("flip", "1") not in ("0", "false", "no"),
        )
    else:
        tid = num("tomogram")
        rec = Reconstruction.from_portal(
            path,
            tomogram=None if tid is None else int(tid),
            volume_shape=volume(),
            image_shape=image(),
            pixel_size_a=num("pixel"),
        )
    if kv:
        raise InvalidValueError(f"{option}: unknown keys {sorted(kv)} for {prog} in {spec!r}")
    return rec


@app.command("remap")
def remap_cmd(
    picks: Annotated[Path, typer.Argument(help="Particle table: .star, .mod/.txt, .json, .ndjson")],
    from_: Annotated[
        str | None, typer.Option("--from", help="Source reconstruction: " + _SPEC_HELP)
    ] = None,
    to: Annotated[
        list[str] | None, typer.Option("--to", help="Target reconstruction(s), same form.")
    ] = None,
    output: Annotated[
        list[Path] | None,
        typer.Option("-o", "--output", help="Output table per --to (format by name)."),
    ] = None,
    picks_format: Annotated[
        str | None,
        typer.Option("--picks-format", help="relion5, warp, imod, copick or portal."),
    ] = None,
    coords_angpix: Annotated[
        float | None,
        typer.Option("--coords-angpix", help="Pixel size (Å) of rlnCoordinateX/Y/Z in a star."),
    ] = None,
    out_format: Annotated[
        str | None, typer.Option("--format", help="Output format (default: by file name).")
    ] = None,
    tomo: Annotated[
        str | None, typer.Option("--tomo", help="Only the picks of this tomogram name.")
    ] = None,
    model: Annotated[str, typer.Option("--model", help="rigid, similarity or affine.")] = "rigid",
    robust: Annotated[
        bool, typer.Option("--robust", help="Leave tilts that disagree out of the fit.")
    ] = False,
    max_residual: Annotated[
        float, typer.Option("--max-residual", help="Refuse above this rms (tilt-image px).")
    ] = 20.0,
    plot: Annotated[
        Path | None, typer.Option("--plot", help="PNG: picks projected on one tilt, before/after.")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite outputs.")] = False,
) -> None:
    """Move picks between reconstructions of one tilt series (any program, binning, size).

    Prints the projection residual per tilt (tilt-image px): 0 when the two reconstructions
    share the alignment; otherwise the rms left by the fitted frame transform.
    """
    import warnings

    from emgeom.io.particles import FORMAT_FRAMES, guess_format, read_particles, write_particles
    from emgeom.tilt._remap import (
        orientations_from_voxels,
        orientations_to_voxels,
        particles_to_voxels,
        remap,
        voxels_to_particles,
    )

    to = to or []
    output = output or []
    if from_ is None:
        raise InvalidValueError("--from: the source reconstruction is required")
    if not to or len(to) != len(output):
        raise InvalidValueError(f"--to/-o: give one -o per --to ({len(to)} --to, {len(output)} -o)")
    for o in output:
        if o.exists() and not force:
            raise InvalidValueError(f"{o}: already exists; pass --force to overwrite")
    src = _reconstruction(from_, "--from")
    table = read_particles(picks, picks_format, coords_angpix=coords_angpix)
    if tomo is None and table.tomo_names is not None and len(set(table.tomo_names)) > 1:
        # default: the tomogram named in a relion5 --from spec (tomo=...)
        tomo = next((p[5:] for p in from_.split(",") if p.startswith("tomo=")), None)
    if tomo is not None:
        table = table.select(tomo)
    elif table.tomo_names is not None and len(set(table.tomo_names)) > 1:
        raise InvalidValueError(
            f"--tomo: {picks} holds picks of {sorted(set(table.tomo_names))}; choose one"
        )
    vox = particles_to_voxels(table.coordinates, table.frame, src)
    mats = None
    if table.matrices is not None:
        mats = orientations_to_voxels(table.matrices, table.frame, src)
    report: dict[str, Any] = {"picks": str(picks), "n": len(table), "source": src.summary()}
    results = []
    for spec, out in zip(to, output, strict=True):
        tgt = _reconstruction(spec, "--to")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            r = remap(
                vox,
                src,
                tgt,
                matrices=mats,
                model=model,
                robust=robust,
                max_residual_px=max_residual,
            )
        form = (out_format or guess_format(out)).lower()
        form = "relion5" if form == "relion" else form
        if form == "relion5" and out_format is None and tgt.program != "relion5":
            form = "warp"  # a .star for a non-RELION tomogram: voxel coordinates (Warp style)
        frame = FORMAT_FRAMES[form]
        coords = voxels_to_particles(r.points, frame, tgt)
        m_out = None if r.matrices is None else orientations_from_voxels(r.matrices, frame, tgt)
        names = table.tomo_names
        if names is None and form in ("relion5", "warp"):
            names = [out.stem] * len(table)
        pixel = tgt.pixel_size_a if form == "relion5" else tgt.voxel_size_a
        write_particles(
            out,
            form,
            coords,
            matrices=None if form == "imod" else m_out,
            tomo_names=names,
            pixel_size_a=pixel,
            force=force,
        )
        if plot is not None:
            _remap_plot(
                plot if len(to) == 1 else plot.with_stem(f"{plot.stem}_{out.stem}"),
                src,
                tgt,
                vox,
                r,
                force,
            )
        results.append(
            {
                "target": tgt.summary(),
                "written": str(out),
                "format": form,
                "exact": r.exact,
                "model": r.model,
                "residual_px": r.residual_px,
                "residual_max_px": r.residual_max_px,
                "per_tilt": [
                    {"tilt_deg": float(t), "rms_px": float(e), "fitted": bool(f)}
                    for t, e, f in zip(
                        r.tilt_deg, r.residual_per_tilt_px, r.tilts_fitted, strict=True
                    )
                ],
                "n_outside": r.n_outside,
                "transform": r.transform,
                "warnings": [str(w.message) for w in caught],
                "notes": list(r.notes),
            }
        )
    report["targets"] = results
    echo_json(report)


def _remap_plot(path: Path, src: Any, tgt: Any, vox: Any, r: Any, force: bool) -> None:
    """Picks projected on the most tilted paired tilt: source model vs target model."""
    from emgeom._validate import require
    from emgeom.io._atomic import atomic_output

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
