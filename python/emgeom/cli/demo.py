"""``emgeom demo``: emgeom's capabilities on bundled sample data, written into a new folder."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from emgeom.errors import OutputExistsError

#: The question that started emgeom (cryoSPARC forum thread 12204).
FORUM_M = [-0.00571369, -0.00932393, -0.01013075, 0.00451204]
FORUM_DETERMINANT = 0.99867812


def sample_path(name: str) -> Path:
    """Path of a bundled sample file (``emgeom/data/<name>``)."""
    return Path(str(resources.files("emgeom") / "data" / name))


def _prepare_folder(output: Path, force: bool) -> None:
    if output.exists() and any(output.iterdir()) and not force:
        raise OutputExistsError(f"{output}: folder exists and is not empty; pass --force")
    output.mkdir(parents=True, exist_ok=True)


def _anisomag_demo(output: Path, lines: list[str]) -> dict[str, Any]:
    import io
    from contextlib import redirect_stdout

    from emgeom.anisomag import AnisoMag, correct, distort
    from emgeom.cli.anisomag import print_report, report
    from emgeom.io.mrc import read_mrc, write_mrc

    am = AnisoMag.from_cryosparc(FORUM_M)
    info = report(am, source="cryosparc", logged_determinant=FORUM_DETERMINANT)
    info["answer"] = am.to_motioncor().as_args()
    buf = io.StringIO()
    with redirect_stdout(buf):
        print_report(info, "motioncor2")
    lines += [
        "== 1. Anisotropic magnification ==",
        "cryoSPARC Global CTF Refinement printed",
        "  Anisotropic Mag: [[-0.00571369 -0.00932393] [-0.01013075 0.00451204]]",
        f"  Anisotropic Mag Determinant: {FORUM_DETERMINANT}",
        "What are the MotionCor2 -Mag parameters?",
        "",
        buf.getvalue().rstrip(),
        "",
    ]
    (output / "anisomag.json").write_text(json.dumps(info, indent=2))

    mrc = read_mrc(sample_path("micrograph_crop.mrc"))
    true = mrc.data.astype(np.float32)
    observed = distort(true, am)
    corrected = correct(observed, am)
    write_mrc(output / "micrograph_distorted.mrc", observed, mrc.pixel_size_a, force=True)
    write_mrc(output / "micrograph_corrected.mrc", corrected, mrc.pixel_size_a, force=True)
    inner = (slice(32, -32), slice(32, -32))
    std = float(true[inner].std())
    err_before = float(np.sqrt(np.mean((observed[inner] - true[inner]) ** 2))) / std
    err_after = float(np.sqrt(np.mean((corrected[inner] - true[inner]) ** 2))) / std
    lines += [
        "Bundled real micrograph (512×512 crop): distorted with this D (what the microscope does),",
        "then corrected with emgeom.anisomag.correct (bicubic, Rust):",
        f"  RMS difference to the original, relative to its std: distorted {err_before:.3f}, "
        f"corrected {err_after:.3f}",
        "  files: micrograph_distorted.mrc, micrograph_corrected.mrc, anisomag.json",
    ]
    figure = _ellipse_figure(am, output / "anisomag_ellipse.png")
    if figure:
        lines.append(f"  figure: {figure}")
    lines.append("")
    return {"relative_rms_distorted": err_before, "relative_rms_corrected": err_after}


def _ellipse_figure(am: Any, path: Path) -> str | None:
    """Draw the distortion ellipse (exaggerated) if matplotlib is installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    d = am.distortion
    exaggerate = 10.0
    d_plot = np.eye(2) + exaggerate * (d / np.sqrt(am.determinant) - np.eye(2))
    t = np.linspace(0, 2 * np.pi, 361)
    circle = np.stack([np.cos(t), np.sin(t)])
    ellipse = d_plot @ circle
    a = np.radians(am.major_axis_deg)
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot(circle[0], circle[1], "--", color="0.6", label="true (circle)")
    ax.plot(ellipse[0], ellipse[1], color="C3", label=f"observed (anisotropy ×{exaggerate:.0f})")
    ax.plot(
        [-1.2 * np.cos(a), 1.2 * np.cos(a)],
        [1.2 * np.sin(a), -1.2 * np.sin(a)],
        color="C0",
        label=f"major axis {am.major_axis_deg:.1f}° (lowest magnification)",
    )
    ax.set_aspect("equal")
    ax.invert_yaxis()  # row 0 at the top, as images are displayed
    ax.set_xlabel("x (column)")
    ax.set_ylabel("y (row, down)")
    ax.set_title(f"anisotropy {am.anisotropy_percent:.2f} %")
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path.name


def demo(
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Folder to create for the results.")
    ] = Path("emgeom-demo"),
    force: Annotated[bool, typer.Option("--force", help="Reuse a non-empty folder.")] = False,
) -> None:
    """Run emgeom on bundled sample data and write a report into a new folder."""
    _prepare_folder(output, force)
    lines: list[str] = [f"emgeom demo — results in {output}", ""]
    _anisomag_demo(output, lines)
    text = "\n".join(lines)
    (output / "report.txt").write_text(text + "\n")
    typer.echo(text)
    typer.echo(f"report written to {output / 'report.txt'}")
