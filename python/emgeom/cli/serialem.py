"""``emgeom serialem``: Navigator items, stage ↔ map pixel, Realign to Item."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from emgeom.cli._common import echo_json
from emgeom.errors import EmgeomWarning, InvalidValueError, MissingDependencyError
from emgeom.io.atomic import atomic_output, check_output
from emgeom.io.mdoc import read_mdoc
from emgeom.io.montage import Montage, read_montage
from emgeom.io.mrc import read_mrc
from emgeom.io.serialem_nav import read_nav, write_nav
from emgeom.serialem import MapFrame, map_path, realign

app = typer.Typer(
    help="SerialEM Navigator geometry: list items, stage <-> map pixel, realign a new image.",
    no_args_is_help=True,
)


def _nav(path: Path) -> Any:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", EmgeomWarning)
        nav = read_nav(path)
    for w in caught:
        typer.echo(f"emgeom: warning: {w.message}", err=True)
    return nav


def _pair(text: str, name: str) -> tuple[float, float]:
    try:
        a, b = (float(v) for v in text.replace(",", " ").split())
    except ValueError:
        raise InvalidValueError(f"{name}: expected 'x,y', got {text!r}") from None
    if not (np.isfinite(a) and np.isfinite(b)):
        raise InvalidValueError(f"{name}: expected finite numbers, got {text!r}")
    return a, b


def _item_dict(it: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"label": it.label, "kind": it.kind, "note": it.note}
    if "StageXYZ" in it.values:
        out["stage_xyz_um"] = list(it.stage_xyz_um)
    if it.kind == "map":
        out.update(
            map_id=it.map_id,
            map_file=it.map_file,
            montage=it.map_montage,
            map_width_height=it.map_width_height,
            map_binning=it.map_binning,
            imported=it.imported,
        )
    elif it.drawn_id is not None:
        out["drawn_id"] = it.drawn_id
    return out


@app.command("items")
def items_cmd(
    nav: Annotated[Path, typer.Argument(help="Navigator file (.nav, autodoc format).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the items of NAV in file order."""
    n = _nav(nav)
    rows = [_item_dict(it) for it in n.items]
    if as_json:
        echo_json({"nav": str(nav), "written_by_serialem": n.written_by_serialem, "items": rows})
        return
    for r in rows:
        st = r.get("stage_xyz_um")
        pos = f"{st[0]:10.3f} {st[1]:10.3f}" if st else " " * 21
        extra = ""
        if r["kind"] == "map":
            extra = f"  {r['map_file']}{' (montage)' if r['montage'] else ''}"
        typer.echo(f"{r['label']:>12}  {r['kind']:<7} {pos}{extra}")


def _frame(item: Any, map_shape: str | None) -> Any:
    shape = None
    if map_shape is not None:
        r, c = _pair(map_shape, "--map-shape")
        shape = (int(r), int(c))
    return MapFrame.from_item(item, shape)


@app.command("where")
def where_cmd(
    nav: Annotated[Path, typer.Argument(help="Navigator file.")],
    item: Annotated[str, typer.Option(help="Label of the map item.")],
    pixel: Annotated[
        str | None, typer.Option(help="Map pixel 'x,y' (numpy column,row of the map file).")
    ] = None,
    stage: Annotated[str | None, typer.Option(help="Stage 'x,y' in µm.")] = None,
    map_shape: Annotated[
        str | None, typer.Option(help="'rows,cols' of the map as loaded (default MapWidthHeight).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    plot: Annotated[Path | None, typer.Option(help="Write the items and the point (PNG).")] = None,
    force: Annotated[bool, typer.Option(help="Overwrite --plot output.")] = False,
) -> None:
    """Convert a map pixel to stage µm (--pixel) or stage µm to a map pixel (--stage)."""
    if (pixel is None) == (stage is None):
        raise InvalidValueError("give exactly one of --pixel and --stage")
    n = _nav(nav)
    frame = _frame(n[item], map_shape)
    if pixel is not None:
        px = np.array(_pair(pixel, "--pixel"))
        st = frame.pixel_to_stage(px)
    else:
        st = np.array(_pair(stage or "", "--stage"))
        px = frame.stage_to_pixel(st)
    if plot is not None:
        _plot_where(n, frame, st, plot, force)
    if as_json:
        echo_json(
            {
                "item": item,
                "map_shape": list(frame.shape),
                "pixel": px,
                "stage_um": st,
                "pixel_size_a": frame.pixel_size_a,
            }
        )
    else:
        typer.echo(
            f"map {item} pixel ({px[0]:.2f}, {px[1]:.2f})  <->  stage ({st[0]:.4f}, {st[1]:.4f}) µm"
        )


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise MissingDependencyError("--plot needs matplotlib: pip install emgeom[plot]") from exc
    return plt


def _save(fig: Any, path: Path, force: bool) -> None:
    with atomic_output(path, force=force) as tmp:
        fig.savefig(tmp, format=path.suffix.lstrip(".") or "png", dpi=110)


def _plot_where(nav: Any, frame: Any, st: Any, path: Path, force: bool) -> None:
    check_output(path, force)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 6))
    for it in nav.items:
        pts = it.points_um
        if len(pts):
            ax.plot(pts[:, 0], pts[:, 1], "-" if len(pts) > 1 else "o", lw=1)
    o = frame.outline_um()
    ax.plot(o[:, 0], o[:, 1], "k--", lw=1, label=f"map {frame.label} (MapScaleMat)")
    ax.plot(*st, "r+", ms=14, label="point")
    ax.set_aspect("equal")
    ax.set_xlabel("stage x (µm)")
    ax.set_ylabel("stage y (µm)")
    ax.legend(loc="best", fontsize=8)
    _save(fig, path, force)
    plt.close(fig)


def _load_image(path: Path, pixel: float | None, what: str) -> tuple[Any, float]:
    img = read_mrc(path)
    data = img.data if img.data.ndim == 2 else img.data[0]
    px = pixel or img.pixel_size_a
    mdoc = path.with_name(path.name + ".mdoc")
    if px is None and mdoc.exists():
        px = read_mdoc(mdoc).pixel_spacing_a()
    if px is None:
        raise InvalidValueError(
            f"{path}: no pixel size in the MRC header or {mdoc.name}; give {what}"
        )
    return np.ascontiguousarray(data), float(px)


def _load_map(nav_path: Path, item: Any, map_file: Path | None) -> Any:
    path = str(map_file) if map_file is not None else map_path(item, nav_path)
    sec = item.map_section or 0
    if item.map_montage:
        return read_montage(path, section=sec)
    data = read_mrc(path).data
    if data.ndim == 3:
        if sec >= data.shape[0]:
            raise InvalidValueError(
                f"{path}: MapSection {sec} of [Item = {item.label}] is past the {data.shape[0]} "
                "sections of the file"
            )
        data = data[sec]
    return np.ascontiguousarray(data)


def _matrix4(text: str) -> Any:
    try:
        vals = [float(v) for v in text.replace(",", " ").split()]
    except ValueError:
        vals = []
    if len(vals) != 4:
        raise InvalidValueError(f"--image-scale-mat: expected 4 numbers, got {text!r}")
    return np.array(vals).reshape(2, 2)


def _realign_dict(item: str, res: Any) -> dict[str, Any]:
    a = res.alignment
    return {
        "item": item,
        "found": res.found,
        "confidence": res.confidence,
        "stage_xy_um": res.stage_xy_um,
        "expected_stage_xy_um": res.expected_stage_xy_um,
        "error_um": res.error_um,
        "map_xy_px": res.map_xy_px,
        "piece": res.piece,
        "map_pixel_a": res.map_pixel_a,
        "alignment": {
            "scale": a.scale,
            "rotation_deg": a.rotation_deg,
            "ccc": a.ccc,
            "overlap": a.overlap,
            "peak_ratio": a.peak_ratio,
        },
    }


@app.command("realign")
def realign_cmd(
    nav: Annotated[Path, typer.Argument(help="Navigator file.")],
    image: Annotated[Path, typer.Argument(help="New image (MRC as SerialEM saved it).")],
    item: Annotated[str, typer.Option(help="Label of the map item to realign to.")],
    pixel_size: Annotated[
        float | None, typer.Option(help="New image pixel size, Å (default: header or .mdoc).")
    ] = None,
    stage: Annotated[
        str | None, typer.Option(help="Stage 'x,y' µm of the new image (default: the item's).")
    ] = None,
    rotation: Annotated[
        float | None, typer.Option(help="Rotation of the image vs the map, degrees.")
    ] = None,
    image_scale_mat: Annotated[
        str | None,
        typer.Option(help="The image's stage->pixel matrix 'xpx,xpy,ypx,ypy' (MapScaleMat form)."),
    ] = None,
    max_shift: Annotated[float | None, typer.Option(help="Largest stage error, µm.")] = None,
    map_file: Annotated[
        Path | None, typer.Option(help="The map file (default: MapFile, or next to the nav).")
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Write a Navigator with a corrected point added.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    plot: Annotated[Path | None, typer.Option(help="Write the map with both positions.")] = None,
    force: Annotated[bool, typer.Option(help="Overwrite --out / --plot.")] = False,
    threads: Annotated[int | None, typer.Option(help="Worker threads.")] = None,
) -> None:
    """Realign IMAGE to a map item of NAV (SerialEM's Realign to Item); print the stage error."""
    for p in (out, plot):
        if p is not None:
            check_output(p, force)
    n = _nav(nav)
    it = n[item]
    if rotation is None and image_scale_mat is None:
        raise InvalidValueError("give --rotation or --image-scale-mat (the image's MapScaleMat)")
    ism = None if image_scale_mat is None else _matrix4(image_scale_mat)
    img, px = _load_image(image, pixel_size, "--pixel-size")
    the_map = _load_map(nav, it, map_file)
    res = realign(
        it,
        the_map,
        img,
        image_pixel_a=px,
        stage_xy_um=None if stage is None else _pair(stage, "--stage"),
        rotation_deg=rotation,
        image_scale_mat=ism,
        max_shift_um=max_shift,
        n_threads=threads,
    )
    if plot is not None:
        _plot_realign(it, the_map, res, plot, force)
    if out is not None:
        if not res.found:
            raise InvalidValueError(
                f"{image}: not found on map {item} (confidence {res.confidence:.2f}); "
                f"{out} not written"
            )
        n.add_point(
            f"{item}-realigned",
            res.stage_xy_um,
            it.stage_xyz_um[2],
            drawn_id=it.map_id,
            note=f"realigned: error {res.error_um[0]:.3f} {res.error_um[1]:.3f} um",
        )
        write_nav(n, out, force=force)
    d = _realign_dict(item, res)
    if as_json:
        echo_json(d)
    else:
        state = "found" if res.found else "NOT found (do not use)"
        typer.echo(
            f"{image.name} on map {item}: {state}, confidence {res.confidence:.2f}; stage "
            f"({res.stage_xy_um[0]:.3f}, {res.stage_xy_um[1]:.3f}) µm, error "
            f"({res.error_um[0]:+.3f}, {res.error_um[1]:+.3f}) µm"
        )


def _plot_realign(item: Any, the_map: Any, res: Any, path: Path, force: bool) -> None:
    plt = _pyplot()
    if isinstance(the_map, Montage):
        img = the_map.assemble(max(1, round((item.map_binning or 1) / (item.mont_binning or 1))))
        frame = MapFrame.from_item(item, img.shape, montage_layout=the_map.layout)
    else:
        img, frame = the_map, MapFrame.from_item(item, the_map.shape)
    e = frame.stage_to_pixel(res.expected_stage_xy_um)
    f = frame.stage_to_pixel(res.stage_xy_um)
    fig, ax = plt.subplots(figsize=(6, 6))
    lo, hi = np.percentile(img, [1, 99])
    ax.imshow(img, cmap="gray", vmin=lo, vmax=hi, origin="lower")
    ax.plot(*e, "c+", ms=14, label="stage said")
    ax.plot(*f, "x", color="tab:orange" if res.found else "tab:red", ms=12, label="realigned")
    ax.set_title(f"{item.label}: {'found' if res.found else 'NOT found'} ({res.confidence:.2f})")
    ax.legend(loc="best", fontsize=8)
    _save(fig, path, force)
    plt.close(fig)
