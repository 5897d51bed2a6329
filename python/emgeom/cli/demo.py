"""``emgeom demo``: emgeom's three capabilities on bundled sample data, into a new folder.

The folder gets ``report.txt`` (also printed), MRC files and PNG figures:

1. anisotropic magnification: the cryoSPARC forum question answered in every convention, and a
   bundled real micrograph distorted and corrected (``anisomag_ellipse.png``);
2. cross-magnification alignment: a synthetic View/Record pair with known truth and a
   calibration error, and an unknown rotation + scale recovered on the real micrograph
   (``crossmag_overlay.png``: moving outline on the reference and the correlation map);
3. tilt-series handedness: a real WarpTools → RELION 5 file and AreTomo3's own measurement of
   the same series, per-particle defocus for a million particles, and a simulated tilt series
   whose hand is decided from its images (``hand_slopes.png``);
4. SerialEM Realign to Item: a synthetic map drawn through a real Navigator map item's
   geometry, and a new image taken off target, realigned to it.
"""

from __future__ import annotations

import io
import json
import time
from contextlib import redirect_stdout
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
import typer
from numpy.typing import NDArray

from emgeom import crossmag, resample, simulate, synthetic, tilt
from emgeom.anisomag import AnisoMag, correct, distort
from emgeom.cli.anisomag import print_report, report
from emgeom.cli.crossmag import _plot
from emgeom.errors import EmgeomError, OutputExistsError
from emgeom.io.aretomo import aretomo3_hand, read_ctf_txt
from emgeom.io.atomic import atomic_output, file_error
from emgeom.io.mrc import read_mrc, write_mrc
from emgeom.resample import warp_affine
from emgeom.serialem import MapFrame, read_nav, realign

if TYPE_CHECKING:  # the demo imports its workflows when it runs (fast CLI start)
    from emgeom.synthetic import Acquisition

#: The question that started emgeom (cryoSPARC forum thread 12204).
FORUM_M = [-0.00571369, -0.00932393, -0.01013075, 0.00451204]
FORUM_DETERMINANT = 0.99867812


def sample_path(*parts: str) -> Path:
    """Path of a bundled sample file (``emgeom/data/...``)."""
    p = resources.files("emgeom") / "data"
    for part in parts:
        p = p / part
    return Path(str(p))


def _prepare_folder(output: Path, force: bool) -> None:
    try:
        if output.exists() and not output.is_dir():
            raise OutputExistsError(
                f"{output}: exists and is not a folder; choose another --output"
            )
        if output.is_dir() and any(output.iterdir()) and not force:
            raise OutputExistsError(f"{output}: folder exists and is not empty; pass --force")
        output.mkdir(parents=True, exist_ok=True)
    except EmgeomError:
        raise
    except OSError as exc:
        raise file_error(output, exc, "create the output folder") from None


def _write_text(path: Path, text: str) -> None:
    """Write a demo file atomically (the demo owns its folder: replaces an older run's file)."""
    with atomic_output(path, force=True) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _matplotlib() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


# --------------------------------------------------------------------------- 1. anisomag


def _anisomag_demo(output: Path, lines: list[str]) -> None:
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
    _write_text(output / "anisomag.json", json.dumps(info, indent=2))

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
    if _ellipse_figure(am, output / "anisomag_ellipse.png"):
        lines.append("  figure: anisomag_ellipse.png")
    lines.append("")


def _ellipse_figure(am: Any, path: Path) -> bool:
    """Draw the distortion ellipse (exaggerated) if matplotlib is installed."""
    plt = _matplotlib()
    if plt is None:
        return False
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
    with atomic_output(path, force=True) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return True


# --------------------------------------------------------------------------- 2. crossmag


def _crossmag_demo(output: Path, lines: list[str]) -> None:
    lines.append("== 2. Cross-magnification alignment ==")
    _view_record_demo(output, lines)
    micrograph = read_mrc(sample_path("micrograph_crop.mrc")).data.astype(np.float32)
    _similarity_demo(micrograph, lines)
    _masked_ncc_demo(micrograph, lines)
    lines.append("")


def _view_record_pair() -> tuple[Acquisition, Acquisition, NDArray[np.float64]]:
    """A synthetic 32 Å/px View and a 4 Å/px Record (rotated 12°) of one specimen, and the
    true affine ``[x_view, y_view] = truth @ [x_rec, y_rec, 1]``.
    """
    specimen = synthetic.make_specimen((2048, 2048), pixel_a=4.0, seed=3, holes="edge")
    view = synthetic.acquire(specimen, pixel_a=32.0, shape=(256, 256), noise_sigma=0.3, seed=1)
    truth_center = (1210.3, 880.7)  # master pixels
    record = synthetic.acquire(
        specimen,
        pixel_a=4.0,
        shape=(768, 1024),
        center=truth_center,
        rotation_deg=12.0,
        noise_sigma=1.5,
        seed=2,
    )
    return view, record, synthetic.affine_between(view, record)


def _view_record_demo(output: Path, lines: list[str]) -> None:
    """Align the synthetic Record to the View with a right and a wrong calibration, then
    against pure noise; draw the overlay of the last alignment.
    """
    view, record, truth = _view_record_pair()
    true_center = truth @ np.array([511.5, 383.5, 1.0])
    true_scale = float(np.hypot(truth[0, 0], truth[1, 0]))
    true_rot = float(np.degrees(np.arctan2(truth[1, 0], truth[0, 0])))
    for label, px, rot in (
        ("calibrated (8.000×, 12.0°)", 4.0, 12.0),
        ("calibration off by +3 % and -2.5°", 4.0 * 1.03, 9.5),
    ):
        t0 = time.perf_counter()
        res = crossmag.align(
            view.image,
            record.image,
            reference_pixel_a=32.0,
            moving_pixel_a=px,
            rotation_deg=rot,
            return_map=True,
        )
        ms = 1e3 * (time.perf_counter() - t0)
        err = float(np.hypot(*(np.asarray(res.center) - true_center)))
        lines.append(
            f"  View 256² at 32 Å/px vs Record 1024×768 at 4 Å/px, {label}: found={res.found}, "
            f"confidence {res.confidence:.2f}, centre ({res.center[0]:.1f}, {res.center[1]:.1f}) "
            f"vs truth ({true_center[0]:.1f}, {true_center[1]:.1f}): error {err:.2f} View px; "
            f"refined scale {res.scale:.4f} (true {true_scale:.4f}), rotation "
            f"{res.rotation_deg:.2f}° (true {true_rot:.2f}°); {ms:.0f} ms"
        )
    blank = crossmag.align(
        np.zeros((256, 256), np.float32) + np.random.default_rng(0).normal(0, 1, (256, 256)),
        record.image,
        reference_pixel_a=32.0,
        moving_pixel_a=4.0,
        rotation_deg=12.0,
    )
    lines.append(
        f"  the same Record against pure noise: found={blank.found}, "
        f"confidence {blank.confidence:.2f} (an honest 'no')"
    )
    plt = _matplotlib()
    if plt is not None:
        _plot(res, view.image, output / "crossmag_overlay.png", True)
        lines.append("  figure: crossmag_overlay.png")


def _similarity_demo(micrograph: NDArray[np.float32], lines: list[str]) -> None:
    """Unknown rotation and scale (Fourier–Mellin) on the real micrograph."""
    theta, s = 30.0, 1.2  # moving = reference region rotated and magnified
    c = np.array([255.5, 255.5])
    lin = (1 / s) * synthetic.rotation_matrix(theta)
    moving = resample.warp_affine(
        micrograph,
        resample.affine_about_center(lin, c + [20.0, -15.0], np.array([127.5, 127.5])),
        (256, 256),
    )
    t0 = time.perf_counter()
    sim = crossmag.find_similarity(micrograph, moving)
    ms = 1e3 * (time.perf_counter() - t0)
    lines += [
        f"  unknown rotation and scale (Fourier–Mellin) on the real micrograph: found={sim.found},"
        f" rotation {sim.rotation_deg:.2f}° (true {theta:.2f}°), scale {sim.scale:.4f} "
        f"(true {1 / s:.4f}), centre ({sim.center[0]:.1f}, {sim.center[1]:.1f}) "
        f"(true {c[0] + 20:.1f}, {c[1] - 15:.1f}); {ms:.0f} ms",
    ]


def _masked_ncc_demo(micrograph: NDArray[np.float32], lines: list[str]) -> None:
    """Masked NCC on the real micrograph: a saturated stripe in the reference and a dead band
    in the moving crop, both masked, against plain filtered cross-correlation.
    """
    d = (23, -14)  # reference(x) = moving(x − d)
    ref = micrograph[100:400, 100:400].copy()
    mov = micrograph[100 + d[1] : 340 + d[1], 100 + d[0] : 340 + d[0]].copy()
    m_ref = np.ones(ref.shape, bool)
    m_ref[:, 140:155] = False
    ref[~m_ref] = 4 * float(micrograph.max())
    m_mov = np.ones(mov.shape, bool)
    m_mov[100:130, :] = False
    mov[~m_mov] = 0.0
    plain = crossmag.correlate(ref, mov)
    t0 = time.perf_counter()
    masked = crossmag.masked_correlate(ref, mov, reference_mask=m_ref, moving_mask=m_mov)
    ms = 1e3 * (time.perf_counter() - t0)
    lines.append(
        f"  masked NCC on the real micrograph (saturated stripe + dead band, both masked): shift "
        f"({masked.shift[0]:.2f}, {masked.shift[1]:.2f}) px (true {d[0]}, {d[1]}), NCC "
        f"{masked.peaks[0].value:.3f}; {ms:.0f} ms — plain filtered xcorr says "
        f"({plain.shift[0]:.1f}, {plain.shift[1]:.1f})"
    )


# --------------------------------------------------------------------------- 3. tilt


def _tilt_demo(output: Path, lines: list[str]) -> None:
    lines.append("== 3. Tilt-series geometry and defocus handedness ==")
    star = sample_path("tilt", "Position_16_3_relion5_tomograms.star")
    g = tilt.read_relion(star, tomo_name="24jul16a_Position_16_3.tomostar")
    ctf = read_ctf_txt(sample_path("tilt", "Position_16_3_CTF.txt"))
    df_hand = int(np.median(ctf["df_hand"]))  # AreTomo3 column 8 (present in this file)
    h_aretomo = aretomo3_hand(df_hand)
    lines += [
        f"  real WarpTools → RELION 5 file, Position_16_3: {g.n_tilts} tilts "
        f"{g.tilt_deg.min():.1f}…{g.tilt_deg.max():.1f}°, axis {np.median(g.axis_deg):.2f}°, "
        f"rlnTomoHand {g.relion_hand:+d} → canonical h = {g.hand:+d}",
        f"  AreTomo3 measured the same series (dfHand {df_hand:+d}) → canonical h = "
        f"{h_aretomo:+d}: "
        + (
            "they DISAGREE — the WarpTools export writes the opposite rlnTomoHand (design "
            "finding 5, WarpLib GetRelionHand); RELION would need rlnTomoHand "
            f"{-h_aretomo:+d}"
            if h_aretomo != g.hand
            else "they agree"
        ),
        f"  flags for h = {h_aretomo:+d}: {_flags(g, h_aretomo)}",
    ]
    rng = np.random.default_rng(0)
    positions = rng.uniform(-3000, 3000, size=(1_000_000, 3)) * [1, 1, 0.1]
    tilt.particle_defocus(g, positions[:1000])
    t0 = time.perf_counter()
    dfs = tilt.particle_defocus(g, positions)
    ms = 1e3 * (time.perf_counter() - t0)
    # again into the same output: the first call also paid the operating system's first touch
    # of the new output pages (often most of its time on a VM)
    t0 = time.perf_counter()
    tilt.particle_defocus(g, positions, out=dfs)
    ms_out = 1e3 * (time.perf_counter() - t0)
    lines.append(
        f"  per-particle, per-tilt defocus for {len(positions):,} particles × {g.n_tilts} tilts "
        f"(float32, Rust): {ms:.0f} ms into a new array, {ms_out:.1f} ms into an existing one "
        f"(out=); range {dfs.min():.0f}…{dfs.max():.0f} Å"
    )

    sim_g = simulate.random_geometry(np.random.default_rng(5), hand=-1, pixel_size_a=(3.0, 3.5))
    images = simulate.simulate_tilt_series(sim_g, shape=(512, 512), snr=0.3, seed=7)
    t0 = time.perf_counter()
    check = tilt.check_hand(sim_g.with_hand(+1), images=images)
    ms = 1e3 * (time.perf_counter() - t0)
    lines.append(
        f"  simulated 41-image ±60° series (512², {sim_g.pixel_size_a:.2f} Å/px, axis "
        f"{float(np.median(sim_g.axis_deg)):.1f}°, true h = -1, header claims +1): "
        f"check_hand decided h = {check.hand:+d} with confidence {check.confidence:.4f}, "
        f"correlation {check.correlation:+.3f}; {ms:.0f} ms"
    )
    if _matplotlib() is not None:
        check.plot(output / "hand_slopes.png", force=True)
        lines.append("  figure: hand_slopes.png (measured vs predicted defocus slope per tilt)")
    lines.append("")


def _flags(g: Any, hand: int) -> str:
    h = g.with_hand(hand)
    return (
        f"rlnTomoHand {h.relion_hand:+d}, Warp AreAnglesInverted {h.warp_angles_inverted}, "
        f"IMOD ctfphaseflip -invert {h.ctfphaseflip_invert}"
    )


def _serialem_demo(output: Path, lines: list[str]) -> None:
    """Realign to Item on the bundled real Navigator map item (synthetic image content)."""
    item = read_nav(sample_path("serialem", "nav.nav"))["17-1-A"]
    sx, sy, _ = item.stage_xyz_um
    # a specimen on the stage: 0.3 µm per master pixel around the map
    spec = synthetic.make_specimen(
        (800, 800),
        pixel_a=3000.0,
        seed=4,
        hole_diameter_a=1.2e6,
        carbon_texture=0.25,
        n_particles=1600,
        particle_sigma_a=12000.0,
        particle_amplitude=-0.6,
        n_contamination=0,
        ice_gradient=0.0,
    )
    to_master = np.array([[1 / 0.3, 0, 399.5 - sx / 0.3], [0, -1 / 0.3, 399.5 + sy / 0.3]])

    def render(cam_to_stage: Any, n: int, seed: int) -> Any:
        lin = to_master[:, :2] @ cam_to_stage[:, :2]
        off = to_master[:, :2] @ (cam_to_stage[:, :2] @ [0.5, 0.5] + cam_to_stage[:, 2])
        img = warp_affine(spec.image, np.hstack([lin, (off + to_master[:, 2])[:, None]]), (n, n))
        return img + np.random.default_rng(seed).normal(0, 0.2, img.shape).astype(np.float32)

    frame = MapFrame.from_item(item, (256, 256))  # the 4096² map loaded binned by 16
    p2s = frame.pixel_to_stage_affine
    the_map = render(
        np.hstack([p2s[:, :2], (p2s[:, :2] @ [-0.5, -0.5] + p2s[:, 2])[:, None]]), 256, 1
    )
    mat = item.require("MapScaleMat", 4).reshape(2, 2)
    cam = np.array([mat[0], -mat[1]]) / 4.0  # the map item's camera, binned 4
    t = np.radians(30.0)
    cam_new = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]]) @ cam
    true = np.array([sx + 9.0, sy - 6.0])  # the stage said (sx, sy)
    inv = np.linalg.inv(cam_new)
    new = render(np.hstack([inv, (true - inv @ [256.0, 256.0])[:, None]]), 512, 2)
    rel = frame.stage_to_pixel_affine[:, :2] @ inv
    rot = float(np.degrees(np.arctan2(rel[1, 0] - rel[0, 1], rel[0, 0] + rel[1, 1])))
    res = realign(
        item,
        the_map,
        new,
        image_pixel_a=1e4 / np.sqrt(abs(np.linalg.det(cam_new))),
        stage_xy_um=(sx, sy),
        rotation_deg=rot,
        max_shift_um=20.0,
    )
    err_px = float(np.hypot(*(np.array(res.stage_xy_um) - true)) / (frame.pixel_size_a / 1e4))
    lines += [
        "== 4. SerialEM Realign to Item ==",
        f"  real Navigator map item {item.label} (pyserialem nav.nav): outline from MapScaleMat "
        f"matches PtsX/PtsY to {frame.check_outline(item) * 1e3:.2f} nm",
        f"  map loaded binned by 16 (256²), new 512² image rotated {rot:.1f}° taken 9, −6 µm "
        "from where the stage said",
        f"  realign: found={res.found} (confidence {res.confidence:.2f}), stage error "
        f"({res.error_um[0]:+.2f}, {res.error_um[1]:+.2f}) µm (true +9.00, -6.00), "
        f"position error {err_px:.2f} map px",
        "",
    ]


def demo(
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Folder to create for the results.")
    ] = Path("emgeom-demo"),
    force: Annotated[bool, typer.Option("--force", help="Reuse a non-empty folder.")] = False,
) -> None:
    """Run emgeom on bundled sample data and write a report and figures into a new folder."""
    _prepare_folder(output, force)
    lines: list[str] = [f"emgeom demo — results in {output}", ""]
    for part in (_anisomag_demo, _crossmag_demo, _tilt_demo, _serialem_demo):
        start = len(lines)
        part(output, lines)
        typer.echo("\n".join(lines[start:] if start else lines))
    if _matplotlib() is None:
        note = "(figures skipped: matplotlib is not installed; pip install 'emgeom[plot]')"
        lines.append(note)
        typer.echo(note)
    _write_text(output / "report.txt", "\n".join(lines) + "\n")
    typer.echo(f"report written to {output / 'report.txt'}")
