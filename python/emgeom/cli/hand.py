"""``emgeom tilt check-hand`` and ``emgeom tilt audit``: defocus handedness from the data and
across programs (mounted under ``emgeom tilt`` by the CLI package).

Exit codes: 0 = decided / agree; 3 = undecided (check-hand) or files disagree (audit);
2 = bad input (from the main entry point).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from emgeom.cli._common import echo_json
from emgeom.errors import InvalidValueError
from emgeom.io.ctffind5 import read_ctffind5_tilt_series
from emgeom.tilt import audit, audit_dataset, check_hand, load_source, read_subtilt_star

app = typer.Typer(
    help="Defocus handedness: check it from the data, audit it across programs' files.",
    no_args_is_help=True,
)


def _progress_bar(total_hint: str) -> Any:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn(f"[bold]{total_hint}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} tilts"),
        TimeElapsedColumn(),
        transient=True,
        console=Console(stderr=True),  # keep stdout clean for --json
    )


def _print_hand(res: Any) -> None:
    """The text report of ``check-hand``: the decision, each program's flag, the notes."""
    if res.decided:
        f = res.program_flags()
        typer.echo(
            f"defocus hand: h = {res.hand:+d} (confidence {res.confidence:.4f}, "
            f"r = {res.correlation:+.3f}, {res.n_used} tilts, source {res.source})"
        )
        typer.echo(
            f"  RELION _rlnTomoHand {f['relion_rlnTomoHand']:+d}; Warp AreAnglesInverted="
            f"{f['warp_AreAnglesInverted']}; IMOD ctfphaseflip "
            f"{'-invert' if f['imod_ctfphaseflip_invert'] else 'without -invert'}; pytom "
            f"--defocus-handedness {f['pytom_defocus_handedness']:+d}"
            f"{'' if f['pytom_exact'] else ' (approximate)'}"
        )
        state = "agrees" if res.agrees_with_geometry else "DISAGREES"
        typer.echo(f"  the input geometry (h = {res.geometry_hand:+d}) {state}")
    else:
        typer.echo(
            f"defocus hand: undecided (confidence {res.confidence:.4f}, leaning "
            f"{res.leaning_hand:+d})"
        )
    for n in res.notes:
        typer.echo(f"  note: {n}")


@app.command("check-hand")
def check_hand_cmd(
    geometry: Annotated[
        Path | None,
        typer.Argument(
            help="Tilt geometry: RELION tomograms.star, Warp .xml, IMOD .tlt (+ .xf beside it) "
            "or AreTomo .aln. Not needed with --subtilt.",
        ),
    ] = None,
    tomo: Annotated[str | None, typer.Option(help="Tomogram name in a tomograms.star.")] = None,
    images: Annotated[
        Path | None, typer.Option(help="The tilt series as an MRC stack (geometry's order).")
    ] = None,
    subtilt: Annotated[
        Path | None,
        typer.Option(help="A Warp/RELION sub-tilt particle star (geometry derived from it)."),
    ] = None,
    ctffind5: Annotated[
        Path | None, typer.Option(help="Folder of CTFFIND5 *_tilt.json, one per tilt.")
    ] = None,
    pixel_size: Annotated[
        float | None, typer.Option(help="Pixel size of the images / IMOD shifts (Å).")
    ] = None,
    voltage: Annotated[float, typer.Option(help="kV")] = 300.0,
    cs: Annotated[float, typer.Option(help="Spherical aberration (mm).")] = 2.7,
    amplitude_contrast: Annotated[float, typer.Option(help="Amplitude contrast.")] = 0.07,
    binning: Annotated[int | None, typer.Option(help="Image binning (default: auto).")] = None,
    threads: Annotated[int | None, typer.Option(help="Worker threads.")] = None,
    plot: Annotated[Path | None, typer.Option(help="Write the slope plot (PNG) here.")] = None,
    force: Annotated[bool, typer.Option(help="Overwrite the plot file.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Decide the defocus handedness of one tilt series from measured defocus."""
    sources = [x for x in (images, subtilt, ctffind5) if x is not None]
    if len(sources) != 1:
        raise InvalidValueError("give exactly one of --images, --subtilt, --ctffind5")
    kw: dict[str, Any] = {}
    if subtilt is not None:
        st = read_subtilt_star(subtilt, pixel_size_a=pixel_size)
        geo = st.geometry
        kw["samples"] = st.samples
    else:
        if geometry is None:
            raise InvalidValueError("geometry: a tilt-geometry file is required")
        geo = load_source(geometry, tomo_name=tomo, pixel_size_a=pixel_size).geometry
        if ctffind5 is not None:
            kw["ctffind5"] = read_ctffind5_tilt_series(ctffind5)
    if images is not None:
        with _progress_bar("CTF tiles") as prog:
            task = prog.add_task("tiles", total=geo.n_tilts)

            def tick(done: int, total: int) -> None:
                prog.update(task, completed=done, total=total)

            res = check_hand(
                geo,
                images=images,
                pixel_size_a=pixel_size,
                voltage_kv=voltage,
                cs_mm=cs,
                amplitude_contrast=amplitude_contrast,
                binning=binning,
                progress=tick,
                n_threads=threads,
            )
    else:
        res = check_hand(geo, **kw)
    if plot is not None:
        res.plot(plot, force=force)
    if json_out:
        echo_json(res.summary())
    else:
        _print_hand(res)
    if not res.decided:
        raise SystemExit(3)


@app.command("audit")
def audit_cmd(
    files: Annotated[
        list[Path],
        typer.Argument(
            help="Two or more files of one tilt series (.xml, .star, .tlt, .aln); or ONE "
            "tomograms.star / folder of Warp XMLs for the data-set majority check."
        ),
    ],
    tomo: Annotated[str | None, typer.Option(help="Tomogram name in tomograms.star.")] = None,
    pixel_size: Annotated[
        float | None, typer.Option(help="Pixel size for IMOD/AreTomo shifts (Å).")
    ] = None,
    pytom: Annotated[
        int | None,
        typer.Option(
            help="Also audit pytom-match-pick reading the FIRST file with this "
            "--defocus-handedness (-1, 0, +1)."
        ),
    ] = None,
    axis_tolerance: Annotated[
        float, typer.Option(help="Data set: allowed tilt-axis deviation (deg).")
    ] = 10.0,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Do these files agree on per-particle defocus? Which flag to change if not."""
    if len(files) == 1:
        res = audit_dataset(files[0], axis_tolerance_deg=axis_tolerance)
        if json_out:
            echo_json(res.summary())
        else:
            typer.echo(
                f"{len(res.names)} tilt series; majority hand h = {res.majority_hand:+d}, "
                f"tilt axis {res.majority_axis_deg:.2f} deg"
            )
            if res.consistent:
                typer.echo("all series agree with the majority")
            for name, msg in res.flagged.items():
                typer.echo(f"  FLAG {name}: {msg}")
        if not res.consistent:
            raise SystemExit(3)
        return
    srcs = [load_source(f, tomo_name=tomo, pixel_size_a=pixel_size) for f in files]
    if pytom is not None:
        srcs.append(
            load_source(files[0], tomo_name=tomo, pixel_size_a=pixel_size, pytom_handedness=pytom)
        )
    rep = audit(srcs)
    if json_out:
        echo_json(rep.summary())
    else:
        for s, f in zip(rep.sources, rep.flags, strict=True):
            typer.echo(f"{s}: {f}")
        for p in rep.pairs:
            typer.echo(f"- {p.a} vs {p.b}: {p.verdict}")
            if p.fix:
                typer.echo(f"    fix: {p.fix}")
        if rep.odd_ones_out:
            typer.echo(f"odd one(s) out: {', '.join(rep.odd_ones_out)}")
        for a in rep.advice:
            typer.echo(f"advice: {a}")
        typer.echo("AGREE" if rep.agree else "DISAGREE")
    if not rep.agree:
        raise SystemExit(3)
