"""``emgeom crossmag``: align a higher-magnification image onto a lower-magnification one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal, overload

import numpy as np
import typer

from emgeom import crossmag
from emgeom._validate import as_float, as_int, require
from emgeom.cli._common import echo_json, to_jsonable
from emgeom.errors import EmgeomError, FileFormatError, InvalidValueError
from emgeom.io.atomic import atomic_output, check_output
from emgeom.io.mdoc import read_mdoc
from emgeom.io.mrc import read_mrc
from emgeom.io.text import read_table

app = typer.Typer(
    help="Cross-magnification alignment with known magnifications (SerialEM-style).",
    no_args_is_help=True,
)


def _mdoc_pixel(path: Path) -> float | None:
    """``PixelSpacing`` (Å) from SerialEM's ``<image>.mdoc`` next to the image, if present
    (the header's, else the first section's; read by :func:`emgeom.io.mdoc.read_mdoc`).
    """
    mdoc = path.with_name(path.name + ".mdoc")
    if not mdoc.exists():
        return None
    return read_mdoc(mdoc).pixel_spacing_a()


@overload
def _load(
    path: Path, pixel: float | None, what: str, *, required: Literal[True] = ...
) -> tuple[np.ndarray, float]: ...
@overload
def _load(
    path: Path, pixel: float | None, what: str, *, required: bool
) -> tuple[np.ndarray, float | None]: ...
def _load(
    path: Path, pixel: float | None, what: str, *, required: bool = True
) -> tuple[np.ndarray, float | None]:
    img = read_mrc(path)
    data = img.data
    if data.ndim == 3:
        if data.shape[0] != 1:
            raise InvalidValueError(f"{path}: expected one image, got a stack of {data.shape[0]}")
        data = data[0]
    px = pixel if pixel is not None else img.pixel_size_a
    if px is None:
        px = _mdoc_pixel(path)
    if px is None and required:
        raise InvalidValueError(
            f"{path}: neither the MRC header (0 or 1 Å) nor a SerialEM {path.name}.mdoc gives "
            f"a pixel size; give {what}"
        )
    return np.ascontiguousarray(data), None if px is None else float(px)


def result_dict(res: Any) -> dict[str, Any]:
    """The JSON form of an :class:`~emgeom.crossmag.AlignmentResult` (with the ranked
    ``candidates`` of a :func:`~emgeom.crossmag.find_similarity` result).
    """
    out = _result_fields(res)
    if hasattr(res, "candidates"):
        out["candidates"] = [
            {
                "scale": c.scale,
                "rotation_deg": c.rotation_deg,
                "score": c.score,
                "ccc": c.ccc,
                "overlap": c.overlap,
                "center_px": list(c.center),
                "affine": c.affine,
            }
            for c in res.candidates
        ]
    return out


def _result_fields(res: Any) -> dict[str, Any]:
    return {
        "found": res.found,
        "confidence": res.confidence,
        "center_px": list(res.center),
        "center_a": list(res.center_a),
        "shift_a": list(res.shift_a),
        "center_sigma_px": res.center_sigma,
        "scale": res.scale,
        "scale_sigma": res.scale_sigma,
        "rotation_deg": res.rotation_deg,
        "rotation_sigma_deg": res.rotation_sigma_deg,
        "affine": res.affine,
        "ccc": res.ccc,
        "significance": res.significance,
        "overlap": res.overlap,
        "peak_ratio": res.peak_ratio,
        "peak_z": res.peak_z,
        "prediction_ccc": res.prediction_ccc,
        "residual_corr_area": res.residual_corr_area,
        "at_search_edge": res.at_search_edge,
        "reference_pixel_a": res.reference_pixel_a,
        "moving_pixel_a": res.moving_pixel_a,
        "binning": res.binning,
        "n_evaluations": res.n_evaluations,
        "convention": "[x_ref, y_ref] = affine @ [x_mov, y_mov, 1]; pixel centres on integer "
        "indices; center = position of the moving centre ((nx-1)/2, (ny-1)/2) in the reference",
    }


def _print_human(res: Any, ref_path: Path, mov_path: Path) -> None:
    echo = typer.echo
    echo(f"reference: {ref_path} ({res.reference_pixel_a:g} Å/px)")
    echo(f"moving:    {mov_path} ({res.moving_pixel_a:g} Å/px)")
    status = "FOUND" if res.found else "NOT FOUND (do not use the numbers below)"
    echo(f"result:    {status}, confidence {res.confidence:.2f}")
    echo(
        f"centre of moving image in reference: x = {res.center[0]:.2f}, y = {res.center[1]:.2f} "
        f"± {res.center_sigma:.2f} px"
    )
    echo(
        f"offset from reference centre: ({res.center_a[0]:.1f}, {res.center_a[1]:.1f}) Å "
        "(x right, y down)"
    )
    echo(
        f"scale {res.scale:.5f} ± {res.scale * res.scale_sigma:.5f} (moving/reference pixel), "
        f"rotation {res.rotation_deg:.2f} ± {res.rotation_sigma_deg:.2f}°"
        + ("  [at the edge of the search range]" if res.at_search_edge else "")
    )
    echo(
        f"ccc {res.ccc:.3f} (significance {res.significance:.2f}), overlap {res.overlap:.2f}, "
        f"peak ratio {res.peak_ratio:.2f}"
    )


def _plot(res: Any, ref: np.ndarray, path: Path, force: bool) -> None:
    require("matplotlib", "plot")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ny, nx = res.moving_shape
    corners = np.array(
        [[-0.5, -0.5], [nx - 0.5, -0.5], [nx - 0.5, ny - 0.5], [-0.5, ny - 0.5], [-0.5, -0.5]]
    )
    outline = res.transform_points(corners)
    fig, axes = plt.subplots(1, 2 if res.correlation_map is not None else 1, figsize=(11, 5))
    ax = np.atleast_1d(axes)
    lo, hi = np.percentile(ref, [1, 99])
    ax[0].imshow(ref, cmap="gray", vmin=lo, vmax=hi)
    ax[0].plot(outline[:, 0], outline[:, 1], "-", color="tab:orange" if res.found else "tab:red")
    ax[0].plot(*res.center, "+", color="tab:orange", ms=12)
    # the centre's 1σ circle (the larger per-axis σ)
    t = np.linspace(0.0, 2.0 * np.pi, 65)
    ax[0].plot(
        res.center[0] + res.center_sigma * np.cos(t),
        res.center[1] + res.center_sigma * np.sin(t),
        "-",
        color="tab:orange",
        lw=0.8,
    )
    ax[0].set_title(
        f"{'found' if res.found else 'NOT found'}, confidence {res.confidence:.2f}\n"
        f"scale {res.scale:.4f} ± {res.scale * res.scale_sigma:.4f}, "
        f"rotation {res.rotation_deg:.2f} ± {res.rotation_sigma_deg:.2f}°"
    )
    if res.correlation_map is not None:
        x0, y0 = res.map_origin
        cm = res.correlation_map
        b = res.binning
        ext = [
            (x0 - 0.5) * b,
            (x0 + cm.shape[1] - 0.5) * b,
            (y0 + cm.shape[0] - 0.5) * b,
            (y0 - 0.5) * b,
        ]
        ax[1].imshow(cm, cmap="viridis", extent=ext)
        ax[1].plot(*res.center, "+", color="w", ms=12)
        ax[1].set_title("correlation map (moving-centre position)")
    fig.tight_layout()
    with atomic_output(path, force=force) as tmp:
        fig.savefig(tmp, format=path.suffix.lstrip(".") or "png", dpi=110)
    plt.close(fig)


@app.command("align")
def align_cmd(
    reference: Annotated[Path, typer.Argument(help="Lower-magnification MRC (e.g. View).")],
    moving: Annotated[Path, typer.Argument(help="Higher-magnification MRC (e.g. Preview).")],
    ref_pixel: Annotated[
        float | None, typer.Option(help="Reference pixel size, Å (default: MRC header).")
    ] = None,
    mov_pixel: Annotated[
        float | None, typer.Option(help="Moving pixel size, Å (default: MRC header).")
    ] = None,
    rotation: Annotated[
        float,
        typer.Option(
            help="Known rotation θ of moving vs reference, degrees (result affine convention)."
        ),
    ] = 0.0,
    expected: Annotated[
        tuple[float, float] | None,
        typer.Option(help="Expected x y of the moving centre in reference pixels."),
    ] = None,
    max_shift: Annotated[
        float | None, typer.Option(help="Search radius around --expected, Å.")
    ] = None,
    scale_search: Annotated[
        float, typer.Option(help="Residual scale half-range (0.04 = ±4%; 0 = off).")
    ] = 0.04,
    rotation_search: Annotated[
        float, typer.Option(help="Residual rotation half-range, degrees (0 = off).")
    ] = 3.0,
    method: Annotated[str, typer.Option(help="xcorr or phase.")] = "xcorr",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    plot: Annotated[Path | None, typer.Option(help="Write an overlay figure (PNG).")] = None,
    force: Annotated[bool, typer.Option(help="Overwrite --plot output.")] = False,
    threads: Annotated[int | None, typer.Option(help="Worker threads.")] = None,
    unknown_rotation: Annotated[
        bool,
        typer.Option(
            "--unknown-rotation",
            help="Rotation and scale unknown: log-polar Fourier–Mellin search "
            "(crossmag.find_similarity); pixel sizes optional, --scale-range is then the range "
            "around their ratio.",
        ),
    ] = False,
    scale_range: Annotated[
        tuple[float, float], typer.Option(help="With --unknown-rotation: scale range searched.")
    ] = (0.5, 2.0),
) -> None:
    """Align MOVING (higher mag) onto REFERENCE (lower mag); print where it lies."""
    res: crossmag.AlignmentResult
    if unknown_rotation:
        ref, p_r_opt = _load(reference, ref_pixel, "--ref-pixel", required=False)
        mov, p_m_opt = _load(moving, mov_pixel, "--mov-pixel", required=False)
        res = crossmag.find_similarity(
            ref,
            mov,
            reference_pixel_a=p_r_opt,
            moving_pixel_a=p_m_opt,
            scale_range=scale_range,
            n_threads=threads,
        )
    else:
        ref, p_r = _load(reference, ref_pixel, "--ref-pixel")
        mov, p_m = _load(moving, mov_pixel, "--mov-pixel")
        res = crossmag.align(
            ref,
            mov,
            reference_pixel_a=p_r,
            moving_pixel_a=p_m,
            rotation_deg=rotation,
            expected_center=expected,
            max_shift_a=max_shift,
            scale_search=scale_search,
            rotation_search_deg=rotation_search,
            method=method,
            n_threads=threads,
            return_map=plot is not None,
        )
    if plot is not None:
        _plot(res, ref, plot, force)
    if as_json:
        echo_json({"reference": str(reference), "moving": str(moving), **result_dict(res)})
    else:
        _print_human(res, reference, moving)


_CSV_COLUMNS = (
    "row",
    "reference",
    "moving",
    "found",
    "confidence",
    "center_x_px",
    "center_y_px",
    "center_x_a",
    "center_y_a",
    "shift_x_a",
    "shift_y_a",
    "scale",
    "rotation_deg",
    "ccc",
    "overlap",
    "peak_ratio",
    "at_search_edge",
    "a00",
    "a01",
    "a02",
    "a10",
    "a11",
    "a12",
    "error",
)


def _csv_table(records: list[dict[str, Any]]) -> str:
    """Flatten batch records to CSV (vectors and the affine split into scalar columns)."""
    import csv
    import io

    buf = io.StringIO()
    writer = csv.DictWriter(
        buf, fieldnames=_CSV_COLUMNS, extrasaction="ignore", lineterminator="\n"
    )
    writer.writeheader()
    for r in records:
        flat = dict(r)
        for key, names in (
            ("center_px", ("center_x_px", "center_y_px")),
            ("center_a", ("center_x_a", "center_y_a")),
            ("shift_a", ("shift_x_a", "shift_y_a")),
        ):
            if isinstance(r.get(key), list):
                flat.update(zip(names, r[key], strict=False))
        if isinstance(r.get("affine"), list):
            for i, row in enumerate(r["affine"]):
                for j, v in enumerate(row):
                    flat[f"a{i}{j}"] = v
        writer.writerow(flat)
    return buf.getvalue()


_NUMBER_COLUMNS: dict[str, dict[str, Any]] = {
    "reference_pixel_a": {"positive": True},
    "moving_pixel_a": {"positive": True},
    "rotation_deg": {"low": -360.0, "high": 360.0},
}


def _opt(row: dict[str, str], name: str, where: str) -> float | None:
    """The number in column ``name`` of a pairs row (None if absent or blank), validated; the
    error names the file, line and column.
    """
    v = (row.get(name) or "").strip()
    if not v:
        return None
    try:
        number = float(v)
    except ValueError:
        raise FileFormatError(f"{where}: column {name!r}: expected a number, got {v!r}") from None
    return as_float(number, f"{where}: column {name!r}", **_NUMBER_COLUMNS[name])


def _pairs(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """Read and check the whole pairs table before anything is aligned."""
    _, rows = read_table(path, ("reference", "moving"), "pairs table (CSV/TSV)")
    out = []
    for line, row in rows:
        where = f"{path}:{line}"
        for col in ("reference", "moving"):
            if not row[col].strip():
                raise FileFormatError(f"{where}: column {col!r} is empty; expected an MRC path")
        values = {name: _opt(row, name, where) for name in _NUMBER_COLUMNS}
        out.append(
            (
                line,
                {"reference": row["reference"].strip(), "moving": row["moving"].strip(), **values},
            )
        )
    return out


def _parse_shard(shard: str) -> tuple[int, int]:
    try:
        i_s, n_s = shard.split("/")
        i, n = int(i_s), int(n_s)
    except ValueError:
        raise InvalidValueError(f"--shard: expected i/n (e.g. 0/4), got {shard!r}") from None
    if n < 1 or not 0 <= i < n:
        raise InvalidValueError(f"--shard: expected 0 <= i < n, got {shard!r}")
    return i, n


@app.command("batch")
def batch_cmd(
    pairs: Annotated[
        Path,
        typer.Argument(
            help="CSV/TSV with columns reference, moving and "
            "optionally reference_pixel_a, moving_pixel_a, "
            "rotation_deg (paths relative to the file)."
        ),
    ],
    out: Annotated[
        Path,
        typer.Option(
            help="Output file, one result per pair: JSON lines (.jsonl) or a flat table (.csv)."
        ),
    ],
    shard: Annotated[str, typer.Option(help="Process only rows k with k % n == i.")] = "0/1",
    scale_search: Annotated[float, typer.Option(help="Residual scale half-range.")] = 0.04,
    rotation_search: Annotated[
        float, typer.Option(help="Residual rotation half-range, degrees.")
    ] = 3.0,
    force: Annotated[bool, typer.Option(help="Overwrite --out.")] = False,
    threads: Annotated[int | None, typer.Option(help="Worker threads.")] = None,
) -> None:
    """Align many pairs listed in a table; one JSON line per pair (errors are recorded).

    The table, the options and --out are checked before the first pair is aligned; a pair that
    fails (unreadable image, no pixel size, ...) gets an "error" field and the others go on.
    """
    i_shard, n_shard = _parse_shard(shard)
    n_threads = None if threads is None else as_int(threads, "--threads", low=1, high=1024)
    as_float(scale_search, "--scale-search", low=0.0, high=0.5)
    as_float(rotation_search, "--rotation-search", low=0.0, high=45.0)
    if out.suffix.lower() not in (".jsonl", ".json", ".ndjson", ".csv"):
        raise InvalidValueError(f"--out: expected a .jsonl or .csv file, got {out.name!r}")
    check_output(out, force)
    rows = _pairs(pairs)
    mine = [(k, r) for k, r in enumerate(rows) if k % n_shard == i_shard]
    base = pairs.parent
    records: list[dict[str, Any]] = []
    n_found = n_failed = 0
    with typer.progressbar(mine, label=f"crossmag shard {i_shard}/{n_shard}") as bar:
        for k, (_line, row) in bar:
            rec: dict[str, Any] = {"row": k, "reference": row["reference"], "moving": row["moving"]}
            try:
                ref, p_r = _load(
                    base / row["reference"], row["reference_pixel_a"], "reference_pixel_a"
                )
                mov, p_m = _load(base / row["moving"], row["moving_pixel_a"], "moving_pixel_a")
                res = crossmag.align(
                    ref,
                    mov,
                    reference_pixel_a=p_r,
                    moving_pixel_a=p_m,
                    rotation_deg=row["rotation_deg"] or 0.0,
                    scale_search=scale_search,
                    rotation_search_deg=rotation_search,
                    n_threads=n_threads,
                )
                rec.update(result_dict(res))
                n_found += int(res.found)
            except (EmgeomError, ValueError, OSError) as exc:
                rec["error"] = str(exc)
                n_failed += 1
            records.append(to_jsonable(rec))
    if out.suffix.lower() == ".csv":
        text = _csv_table(records)
    else:
        text = "".join(json.dumps(r) + "\n" for r in records)
    with atomic_output(out, force=force) as tmp:
        tmp.write_text(text, encoding="utf-8")
    typer.echo(f"{len(mine)} pairs, {n_found} found, {n_failed} failed -> {out}", err=True)
