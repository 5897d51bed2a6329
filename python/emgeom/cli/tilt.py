"""``emgeom tilt``: per-particle defocus, format conversion and explanation of tilt series."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from emgeom import tilt
from emgeom.cli import hand as _hand
from emgeom.cli._common import echo_json, to_jsonable
from emgeom.cli._tilt_remap import (
    SPEC_HELP,
    reconstruction,
    remap_plot,
    source_picks,
    target_report,
    write_remapped,
)
from emgeom.errors import InvalidValueError, OutputExistsError
from emgeom.io.atomic import atomic_output
from emgeom.io.portal import read_portal_alignment
from emgeom.io.relion_tomo import add_particle_defocus, read_relion_tomograms
from emgeom.io.star import write_star
from emgeom.tilt import remap

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
    geoms = read_relion_tomograms(relion, project_dir=project_dir)
    blocks = add_particle_defocus(particles, geoms)
    write_star(output, blocks, force=force)
    pb = blocks.get("particles")
    if pb is None:
        pb = next(b for b in blocks.values() if hasattr(b, "columns"))
    echo_json(
        {
            "written": str(output),
            "particles": len(pb),
            "tomograms": {k: {"n_tilts": g.n_tilts, "hand": g.hand} for k, g in geoms.items()},
        }
    )


# Handedness checks and audits (issue 5): `emgeom tilt check-hand`, `emgeom tilt audit`.

app.command("check-hand")(_hand.check_hand_cmd)
app.command("audit")(_hand.audit_cmd)


@app.command("remap")
def remap_cmd(
    picks: Annotated[Path, typer.Argument(help="Particle table: .star, .mod/.txt, .json, .ndjson")],
    from_: Annotated[
        str | None, typer.Option("--from", help="Source reconstruction: " + SPEC_HELP)
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

    to = to or []
    output = output or []
    if from_ is None:
        raise InvalidValueError("--from: the source reconstruction is required")
    if not to or len(to) != len(output):
        raise InvalidValueError(f"--to/-o: give one -o per --to ({len(to)} --to, {len(output)} -o)")
    for o in output:
        if o.exists() and not force:
            raise OutputExistsError(f"{o}: already exists; pass --force to overwrite")
    src = reconstruction(from_, "--from")
    table, vox, mats = source_picks(picks, picks_format, coords_angpix, tomo, from_, src)
    report: dict[str, Any] = {"picks": str(picks), "n": len(table), "source": src.summary()}
    results = []
    for spec, out in zip(to, output, strict=True):
        tgt = reconstruction(spec, "--to")
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
        form = write_remapped(out, out_format, table, tgt, r, force)
        if plot is not None:
            stem = plot if len(to) == 1 else plot.with_stem(f"{plot.stem}_{out.stem}")
            remap_plot(stem, src, tgt, vox, r, force)
        results.append(target_report(tgt, out, form, r, caught))
    report["targets"] = results
    echo_json(report)
