"""``emgeom anisomag``: convert, explain and correct anisotropic magnification."""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from emgeom import conventions
from emgeom._validate import as_float
from emgeom.anisomag import AnisoMag, convert, correct, distort
from emgeom.cli._common import echo_json
from emgeom.errors import InvalidValueError, LossyConversionWarning
from emgeom.io.atomic import check_output
from emgeom.io.cryosparc import read_cryosparc_anisomag
from emgeom.io.mrc import read_mrc, write_mrc
from emgeom.io.relion_optics import read_relion_optics

app = typer.Typer(
    help="Anisotropic magnification: convert between programs, explain, correct images.",
    no_args_is_help=True,
)

_NAMES = ", ".join(conventions.names("anisomag"))

_VALUES_HELP = (
    "The source convention's numbers, after `--`: cryosparc M (4, row-major, identity "
    "subtracted), relion MagMat00 01 10 11, motioncor2 major minor angle, cistem angle major "
    "minor, warp M11 M21 M12 M22, matrix D00 D01 D10 D11."
)


def _from_values(source: str, values: list[float]) -> AnisoMag:
    name = source.strip().lower()
    if name in ("matrix", "canonical", "d"):
        return AnisoMag(values)
    conv = conventions.get("anisomag", source)
    if conv.name == "warp1":
        if len(values) not in (3, 4):
            raise InvalidValueError(
                f"values: warp1 expects major minor angle [pixel_size_a], got {len(values)} numbers"
            )
        return (
            AnisoMag.from_warp1(*values)
            if len(values) == 3
            else AnisoMag.from_warp1(values[0], values[1], values[2], pixel_size_a=values[3])
        )
    return AnisoMag._from(conv.name, values)


def _fmt_matrix(m: Any) -> str:
    m = np.asarray(m)
    return f"[[{m[0, 0]:.8f}, {m[0, 1]:.8f}], [{m[1, 0]:.8f}, {m[1, 1]:.8f}]]"


def report(am: AnisoMag, *, source: str, logged_determinant: float | None) -> dict[str, Any]:
    """The explanation dict printed by ``convert`` (also used by ``emgeom demo``)."""
    info = am.explain()
    info["source_convention"] = source
    if logged_determinant is not None:
        logged_determinant = as_float(
            logged_determinant, "--determinant (logged_determinant)", positive=True
        )
        det = info["cryosparc_determinant_I_plus_M"]
        info["determinant_check"] = {
            "det_I_plus_M": det,
            "logged": logged_determinant,
            "agrees": bool(abs(det - logged_determinant) <= 5e-7 * max(1.0, abs(det))),
        }
    info["frame_note"] = (
        "The MotionCor/cisTEM angle assumes the movies MotionCor corrects give sums in the same "
        "frame (same y direction) as the images the distortion was measured on. cryoSPARC Patch "
        "Motion micrographs are y-flipped relative to MotionCor2 output (asarnow/pyem#81): if "
        "the particles came from Patch Motion micrographs, use the y-flipped angle."
    )
    return info


def print_report(info: dict[str, Any], target: str | None) -> None:
    """Human-readable explanation of :func:`report`'s dict."""
    mc = info["motioncor2"]
    ci = info["cistem"]
    echo = typer.echo
    if target is not None:
        echo(f"answer ({target}): {info['answer']}")
        echo("")
    echo(f"cryoSPARC M (I+M minus I):  {_fmt_matrix(info['cryosparc_M'])}")
    magmat = " ".join(f"{v:.6f}" for v in np.ravel(info["relion_MagMat"]))
    echo(f"RELION MagMat 00 01 10 11:  {magmat}")
    echo(f"MotionCor2/3:               {mc['args']}   (pixel-exact: output pixel = p/major)")
    a = mc["area_normalised"]
    echo(f"  area-normalised:          -Mag {a[0]:.6f} {a[1]:.6f} {a[2]:.3f}")
    echo(f"  if micrographs y-flipped: {mc['args_if_y_flipped']}")
    echo(
        f"cisTEM / mag_distortion:    angle {ci['angle_deg']:.3f}  major {ci['major']:.6f}  "
        f"minor {ci['minor']:.6f}"
    )
    echo(f'Warp 2 / M MagnificationCorrection: "{info["warp_MagnificationCorrection"]}"')
    echo(f"emgeom D (x_obs = D x_true): {_fmt_matrix(info['distortion_D'])}")
    echo("")
    s1, s2 = info["singular_values"]
    echo(f"anisotropy:      {info['anisotropy_percent']:.3f} %  (σ1 {s1:.6f}, σ2 {s2:.6f})")
    echo(
        f"major axis:      {info['major_axis_deg']:.3f}° (lowest magnification; axis "
        "(cos a, -sin a) in (x = column, y = row) array coordinates)"
    )
    scale = info["pixel_size_scale"]
    echo(f"pixel size:      true = {scale:.6f} × nominal ({100 * (scale - 1):+.3f} %)")
    echo(f"rotation part:   {info['rotation_deg']:.4f}° (not representable in MotionCor/cisTEM)")
    if "determinant_check" in info:
        chk = info["determinant_check"]
        verdict = "agrees" if chk["agrees"] else "DOES NOT AGREE: check the numbers"
        echo(
            f"determinant:     det(I+M) = {chk['det_I_plus_M']:.8f}, logged "
            f"{chk['logged']:.8f}: {verdict}"
        )
    echo("")
    echo(f"frame: {info['frame_note']}")


@app.command("convert")
def convert_cmd(
    values: Annotated[list[float], typer.Argument(help=_VALUES_HELP)],
    source: Annotated[str, typer.Option("--from", help=f"Source convention: {_NAMES}, matrix.")],
    target: Annotated[
        str | None, typer.Option("--to", help="Target convention for the headline answer.")
    ] = None,
    logged_determinant: Annotated[
        float | None,
        typer.Option("--determinant", help="cryoSPARC's logged 'Anisotropic Mag Determinant'."),
    ] = None,
    flip_y: Annotated[
        bool, typer.Option("--flip-y", help="Express the result in the y-flipped image frame.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Convert anisomag parameters and explain them (every format is printed)."""
    am = _from_values(source, values)
    if flip_y:
        am = am.flip_y()
    info = report(am, source=source, logged_determinant=logged_determinant)
    if target is not None:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", LossyConversionWarning)
            answer = convert(am.distortion, source="matrix", target=target)
        for w in caught:
            typer.echo(f"warning: {w.message}", err=True)
        if hasattr(answer, "as_args"):
            info["answer"] = answer.as_args()
        elif isinstance(answer, np.ndarray):
            info["answer"] = " ".join(f"{v:.8f}" for v in answer.ravel())
        elif isinstance(answer, tuple):
            info["answer"] = " ".join(f"{v:.6f}" for v in answer)
        else:
            info["answer"] = str(answer)
    if as_json:
        echo_json(info)
    else:
        print_report(info, target)


def _load_anisomag(
    source: str | None,
    values: list[float] | None,
    cs: Path | None,
    star: Path | None,
    group: int | None,
) -> AnisoMag:
    given = sum(x is not None for x in (values or None, cs, star))
    if given != 1:
        raise InvalidValueError(
            "give exactly one of: --from NAME -- VALUES..., --cs FILE.cs, --star FILE.star"
        )
    if cs is not None or star is not None:
        if cs is not None:
            table = read_cryosparc_anisomag(cs)
        else:
            assert star is not None
            table = read_relion_optics(star)
        if group is None:
            if len(table) != 1:
                raise InvalidValueError(f"--group: the file has groups {sorted(table)}; pick one")
            return next(iter(table.values()))
        if group not in table:
            raise InvalidValueError(f"--group: {group} not in the file (groups {sorted(table)})")
        return table[group]
    if source is None:
        raise InvalidValueError("--from: the convention of the values is required")
    assert values is not None
    return _from_values(source, values)


@app.command("correct")
def correct_cmd(
    input_mrc: Annotated[Path, typer.Argument(help="Input MRC image or stack.")],
    output_mrc: Annotated[Path, typer.Argument(help="Output MRC (written atomically).")],
    values: Annotated[list[float] | None, typer.Argument(help=_VALUES_HELP)] = None,
    source: Annotated[str | None, typer.Option("--from", help=f"Convention: {_NAMES}.")] = None,
    cs: Annotated[Path | None, typer.Option("--cs", help="cryoSPARC .cs file.")] = None,
    star: Annotated[Path | None, typer.Option("--star", help="RELION STAR with optics.")] = None,
    group: Annotated[int | None, typer.Option("--group", help="Exposure/optics group.")] = None,
    flip_y: Annotated[bool, typer.Option("--flip-y", help="Images are y-flipped.")] = False,
    order: Annotated[int, typer.Option("--order", help="3 bicubic, 1 bilinear.")] = 3,
    apply: Annotated[
        bool, typer.Option("--distort", help="Apply the distortion instead (simulation).")
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="Overwrite the output.")] = False,
) -> None:
    """Correct (or, with --distort, apply) anisotropic magnification on an MRC file."""
    check_output(output_mrc, force)
    am = _load_anisomag(source, values, cs, star, group)
    if flip_y:
        am = am.flip_y()
    mrc = read_mrc(input_mrc)
    func = distort if apply else correct
    out = func(mrc.data, am, order=order)
    write_mrc(output_mrc, out, mrc.pixel_size_a, force=force)
    verb = "distorted" if apply else "corrected"
    scale = am.pixel_size_scale
    typer.echo(
        f"{verb} {input_mrc} -> {output_mrc} ({am}); pixel size unchanged "
        f"({f'{mrc.pixel_size_a:.4f} Å' if mrc.pixel_size_a else 'not in header'}); "
        f"true/nominal pixel before correction {scale:.6f}"
    )
    if not math.isclose(scale, 1.0, abs_tol=5e-3):
        typer.echo(
            f"note: det D differs from 1 by {100 * abs(1 - am.determinant):.2f} %: the correction "
            "also changes the isotropic scale",
            err=True,
        )
