"""Fit and check the calibrated confidence of ``crossmag.align`` (issue 12).

``python -m tests._crossmag_calibration fit [n]``: generates the calibration set, runs
``align`` with its defaults, fits a logistic model of P(centre within 1.5 reference px) on the
result's measures (:data:`emgeom.crossmag._confidence.FEATURES`) and writes it into
``python/emgeom/crossmag/confidence_model.json`` (with ``find_similarity``'s model,
:mod:`tests._crossmag_similarity_calibration`). The set: the synthetic specimen generator
(hole edges, a hole lattice, sparse and nearly featureless fields, smooth ice with faint
particles) and the real EPU thumbnails in ``shared/data/epu_three_mag`` (Apache-2.0: four
data-acquisition micrographs and five foil-hole images), every 8th moving image from an
unrelated image, plus design §7 hole-edge scenario pairs. Not the real micrograph the tests
use (``micrographs/mce_*``: held out), and not ``micrographs/ptolemy_*`` (CC BY-NC: weights
fitted on it must not ship).

``... check [n] [seed ...]`` evaluates the shipped model on held-out pairs of the test
micrograph (seeds 300 301 302 by default, never fitted on) and prints the reliability table,
the expected calibration error (ECE, 10 bins) and the ``found`` error counts.
"""

from __future__ import annotations

import json
import sys
from itertools import pairwise
from pathlib import Path

import numpy as np

from emgeom import crossmag
from emgeom import synthetic as syn
from emgeom.crossmag import _confidence as C
from emgeom.io.mrc import read_mrc

from ._crossmag_data import micrograph_pair, pair_errors

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "micrographs"
OUT = (
    Path(__file__).resolve().parents[1] / "python" / "emgeom" / "crossmag" / "confidence_model.json"
)


#: Direction of each feature of ``align``'s model (C.FEATURES): more significance, a clearer
#: peak, more overlap, a higher prediction CCC -> more confidence; a larger σ, the search edge,
#: a wider residual correlation -> less; `scale_held` and `refined` free.
ALIGN_SIGNS = (1, 1, 1, -1, -1, 1, -1, 0, 0)


def _image(name: str) -> np.ndarray:
    return read_mrc(SHARED / name).data.astype(np.float32)


def run_pairs(
    img: np.ndarray,
    seed: int,
    n: int,
    other: np.ndarray | None = None,
    sizes: tuple[int, int] = (256, 300),
    search: bool = True,
    partial: bool = False,
) -> list[dict]:
    """``n`` pairs (issue-12 protocol: ×4 ``sizes[0]``² and ×6 ``sizes[1]``² moving fields, the
    ×6 ones with a stage-like prior, noise 0.5–2× σ, half with calibration errors up to
    ±3 % / ±2°); with ``other``, every 8th pair takes its moving image from ``other`` (an
    unrelated image: always wrong). ``search=False``: scale and rotation held at an exact
    calibration (``scale_search=0``, ``rotation_search_deg=0``: the user states that the
    calibration is right, and the confidence assumes it). ``partial``: every 4th reference is
    cut so that 10–45 % of the moving field hangs off one of its borders."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        six = i % 3 == 2
        p = micrograph_pair(
            img, rng, bin_=6.0 if six else 4.0, size=sizes[six], cal_error=search and i % 2 == 1
        )
        if partial and i % 4 == 3:
            p = _cut_reference(p, rng, sizes[six] / (6.0 if six else 4.0))
        kw = dict(p["kw"])
        if not search:
            kw.update(scale_search=0.0, rotation_search_deg=0.0)
        if six:
            kw["expected_center"] = p["truth"]["center"] + rng.uniform(-6, 6, 2)
            kw["max_shift_a"] = 10.0 * 6.0
        mov = p["moving"]
        unrelated = other is not None and i % 8 == 7
        if unrelated:
            q = micrograph_pair(other, rng, bin_=6.0 if six else 4.0, size=mov.shape[0])
            mov = q["moving"]
        res = crossmag.align(p["reference"], mov, **kw)
        d, ds, dr = pair_errors(res, p["truth"])
        rows.append(_row(res, d, ds, dr, search and i % 2 == 1, unrelated))
    return rows


def _cut_reference(p: dict, rng: np.random.Generator, width: float) -> dict:
    """``p`` with its reference cut at a random side, ``U(0.05, 0.4)·width`` reference px from
    the true centre (``width``: the moving field's width in reference px), the truth shifted
    with it."""
    ref, c = p["reference"], np.array(p["truth"]["center"], dtype=np.float64)
    side, f = int(rng.integers(4)), float(rng.uniform(0.05, 0.4))
    ax = side % 2  # 0: x (columns), 1: y (rows)
    if side < 2:  # keep from the cut onwards
        k = max(1, int(c[ax] - f * width))
        ref = ref[:, k:] if ax == 0 else ref[k:, :]
        c[ax] -= k
    else:  # keep up to the cut
        k = int(c[ax] + f * width) + 1
        ref = ref[:, :k] if ax == 0 else ref[:k, :]
    return {**p, "reference": np.ascontiguousarray(ref), "truth": {**p["truth"], "center": c}}


def scenario_pairs(seed: int, kind: str, n: int, search: bool = True) -> list[dict]:
    """Design §7-style pairs (a 20 Å/px 818² View of a 4096² master, 1024² Previews at
    2 Å/px, ratio 10, rotation 12°, noise from low to high, half with −3 % / +2.5°
    calibration errors (none with ``search=False``: scale and rotation held), a stage prior
    ±100 View px and a 160 px search radius) — masters other than the tests' (seed 1)."""
    rng = np.random.default_rng(seed)
    master = syn.make_specimen((4096, 4096), pixel_a=4.0, seed=seed, holes=kind)
    rows = []
    levels = [(0.1, 0.5), (0.3, 1.5), (0.45, 2.2), (0.6, 3.0), (0.9, 4.5)]
    views = {
        vn: syn.acquire(master, pixel_a=20.0, shape=(818, 818), noise_sigma=vn, seed=seed + 1)
        for vn, _ in levels
    }
    for i in range(n):
        vn, pn = levels[i % len(levels)]
        v = views[vn]
        c = np.array([2047.5, 2047.5]) + rng.uniform(-200, 200, 2)
        p = syn.acquire(
            master,
            pixel_a=2.0,
            shape=(1024, 1024),
            center=c,
            rotation_deg=12.0,
            noise_sigma=pn,
            seed=int(rng.integers(1 << 30)),
        )
        a = syn.affine_between(v, p)
        tc = a[:, :2] @ np.array(p.center) + a[:, 2]
        cal = search and (i // len(levels)) % 2 == 1
        res = crossmag.align(
            v.image,
            p.image,
            reference_pixel_a=20.0,
            moving_pixel_a=2.0 * (0.97 if cal else 1.0),
            rotation_deg=12.0 + (2.5 if cal else 0.0),
            expected_center=tc + rng.uniform(-100, 100, 2),
            max_shift_a=160 * 20.0,
            **({} if search else {"scale_search": 0.0, "rotation_search_deg": 0.0}),
        )
        d = float(np.hypot(*(np.asarray(res.center) - tc)))
        rows.append(_row(res, d, 0.0, 0.0, cal, False))
    return rows


def _row(res, d: float, ds: float, dr: float, cal: bool, unrelated: bool) -> dict:
    return {
        "x": C.align_features(res).tolist(),
        "m": list(C.align_measures(res)),
        "right": bool(d < C.TOLERANCE_PX and not unrelated),
        "d": d,
        "ds": ds,
        "dr": dr,
        "conf": res.confidence,
        "found": res.found,
        "sig": (res.center_sigma, res.scale_sigma, res.rotation_sigma_deg),
        "cal_error": cal,
        "unrelated": unrelated,
    }


def specimen_images() -> list[np.ndarray]:
    """Hole edge, hole lattice, and two nearly featureless fields (sparse particles on thin
    texture: the hard, mostly-not-found case)."""
    imgs = [
        syn.make_specimen((960, 960), pixel_a=1.0, seed=s, holes=h).image
        for s, h in ((21, "edge"), (22, "lattice"), (23, "edge"))
    ]
    imgs += [
        _flat(s, px, n_particles=n, carbon_texture=0.02, n_contamination=c)
        for s, px, n, c in ((24, 1.0, 400, 1), (25, 4.0, 3000, 2))
    ]
    return [np.asarray(i, dtype=np.float32) for i in imgs]


def _flat(seed: int, pixel_a: float, **kw: float) -> np.ndarray:
    """A 960² generated field without holes."""
    return syn.make_specimen((960, 960), pixel_a=pixel_a, seed=seed, holes="none", **kw).image


def extra_specimen_images() -> list[np.ndarray]:
    """More generated fields for the fit: edge and sparse texture (other seeds), and two
    fields of smooth ice with faint, sparse particles and almost no texture (meant to be like
    the inside of an ice ball; still 88 % right under the protocol's noise)."""
    imgs = [
        syn.make_specimen((960, 960), pixel_a=1.0, seed=26, holes="edge").image,
        _flat(27, 2.0, n_particles=1500, carbon_texture=0.03),
    ]
    imgs += [
        _flat(
            s,
            px,
            n_particles=n,
            particle_amplitude=-0.06,
            carbon_texture=0.005,
            n_contamination=0,
            ice_gradient=0.3,
        )
        for s, px, n in ((28, 1.0, 300), (29, 2.0, 1200))
    ]
    return [np.asarray(i, dtype=np.float32) for i in imgs]


def epu_images() -> list[np.ndarray]:
    """The EPU session's data-acquisition (4) and foil-hole (5) thumbnails, 512 × 364 8-bit
    (shared/data/epu_three_mag, Apache-2.0): real ice, vesicles, carbon edges and holes."""
    import glob

    from PIL import Image

    base = SHARED.parent / "epu_three_mag" / "Images-Disc1"
    paths = sorted(glob.glob(str(base / "*" / "Data" / "*.jpg")))
    paths += sorted(glob.glob(str(base / "*" / "FoilHoles" / "*.jpg")))
    return [np.asarray(Image.open(q).convert("L"), dtype=np.float32) for q in paths]


def fit_set(n: int) -> list[dict]:
    """The calibration set of ``align``'s model (see the module docs): ``n`` pairs per
    generated image with the default search and ``n // 2`` with scale and rotation held (every
    4th with the moving field partly off the reference),
    ``n // 2`` per EPU thumbnail (×4 224² and ×6 200² moving fields: the thumbnails are 364 px
    high), and 48 + 40 scenario pairs (search on / off)."""
    rows = []
    imgs = specimen_images()
    gen = imgs + extra_specimen_images()
    for k, img in enumerate(gen):
        oth = gen[(k + 1) % len(gen)]
        rows += run_pairs(img, 100 + k, n, other=oth, partial=True)
        rows += run_pairs(img, 150 + k, n // 2, other=oth, search=False, partial=True)
    epu = epu_images()
    for k, img in enumerate(epu):
        rows += run_pairs(img, 220 + k, n // 2, other=epu[(k + 3) % len(epu)], sizes=(224, 200))
    rows += scenario_pairs(31, "edge", 32) + scenario_pairs(32, "none", 16)
    return rows + scenario_pairs(33, "edge", 24, False) + scenario_pairs(34, "none", 16, False)


def clip_bounds(x: np.ndarray) -> np.ndarray:
    """(2, n_features) bounds of the model's inputs: the 0.5 and 99.5 percentiles of each
    continuous feature, the full range of a 0/1 one."""
    lo, hi = np.percentile(x, 0.5, axis=0), np.percentile(x, 99.5, axis=0)
    binary = np.all((x == 0) | (x == 1), axis=0)
    lo[binary], hi[binary] = 0.0, 1.0
    return np.array([lo, hi])


def write_model(
    name: str, features: tuple[str, ...], x: np.ndarray, y: np.ndarray, signs: tuple[int, ...]
) -> float:
    """Fit the logistic model ``name`` on ``(x, y)`` (weights of the given ``signs``, see
    :func:`fit_logistic`), store it in the shipped JSON (keeping the other models) and return
    its ECE on the fit set."""
    clip = clip_bounds(x)
    w = fit_logistic(np.clip(x, clip[0], clip[1]), y, signs=signs)
    try:
        data = json.loads(OUT.read_text())
    except (OSError, ValueError):
        data = {}
    data = {k: v for k, v in data.items() if isinstance(v, dict)}
    data[name] = {
        "features": list(features),
        "weights": w.tolist(),
        "clip": clip.tolist(),
        "tolerance_px": C.TOLERANCE_PX,
        "n_pairs": len(y),
        "fraction_right": float(y.mean()),
    }
    OUT.write_text(json.dumps(data, indent=1) + "\n")
    C.load_model.cache_clear()
    m = C.load_model(name, features)
    assert m is not None
    conf = np.array([m(v) for v in x])
    e, table = ece(conf, y)
    print(f"{name} fit: {len(y)} pairs, right {y.mean():.3f}, ECE {e:.3f}")
    _print_table(table)
    return e


def fit_logistic(
    x: np.ndarray, y: np.ndarray, ridge: float = 1e-2, signs: tuple[int, ...] | None = None
) -> np.ndarray:
    """Logistic regression by Newton–Raphson (IRLS) with a small ridge on the weights. With
    ``signs`` (+1, −1 or 0 = free per feature), a weight of the wrong sign is fixed at 0 and the
    rest refitted, so that the model is monotone in each measure in the stated direction."""
    a = np.hstack([np.ones((len(x), 1)), x])
    free = np.ones(a.shape[1], dtype=bool)
    while True:
        w = np.zeros(a.shape[1])
        af = a[:, free]
        reg = ridge * np.r_[0.0, np.ones(free.sum() - 1)]
        wf = np.zeros(af.shape[1])
        for _ in range(100):
            p = 1.0 / (1.0 + np.exp(-np.clip(af @ wf, -50, 50)))
            g = af.T @ (p - y) + reg * wf
            h = (af * (p * (1 - p))[:, None]).T @ af + np.diag(reg)
            step = np.linalg.solve(h, g)
            wf -= step
            if np.abs(step).max() < 1e-8:
                break
        w[free] = wf
        if signs is None:
            return w
        wrong = [i + 1 for i, s in enumerate(signs) if s * w[i + 1] < 0]
        if not wrong:
            return w
        free[wrong] = False


def ece(conf: np.ndarray, right: np.ndarray, bins: int = 10) -> tuple[float, list]:
    """Expected calibration error (equal-width bins) and the reliability table."""
    edges = np.linspace(0, 1, bins + 1)
    tot, table = 0.0, []
    for lo, hi in pairwise(edges):
        m = (conf >= lo) & ((conf < hi) if hi < 1 else (conf <= hi))
        if m.any():
            tot += m.sum() * abs(conf[m].mean() - right[m].mean())
            table.append((lo, hi, int(m.sum()), float(conf[m].mean()), float(right[m].mean())))
    return tot / max(1, len(conf)), table


def main(argv: list[str]) -> None:
    mode = argv[0] if argv else "check"
    n = int(argv[1]) if len(argv) > 1 else (60 if mode == "fit" else 120)
    if mode == "fit":  # fit [n] [rows.json]: the fit sets' rows are also written there
        from ._crossmag_similarity_calibration import fit_similarity

        rows = fit_set(n)
        x = np.array([r["x"] for r in rows])
        y = np.array([r["right"] for r in rows], dtype=np.float64)
        write_model("align", C.FEATURES, x, y, ALIGN_SIGNS)
        sim_rows = fit_similarity()
        if len(argv) > 2:
            Path(argv[2]).write_text(json.dumps({"align": rows, "similarity": sim_rows}))
    elif mode == "similarity":
        from ._crossmag_similarity_calibration import check_similarity

        check_similarity(n)
    elif mode == "epu":
        epu_goal()
    else:
        mce = _image("mce_Ucsf_stack_1142_DW.mrc")
        for seed in [int(a) for a in argv[2:]] or [300, 301, 302]:
            print(f"--- seed {seed}")
            report(run_pairs(mce, seed, n, other=specimen_images()[1]))


def report(rows: list[dict]) -> None:
    conf = np.array([r["conf"] for r in rows])
    right = np.array([r["right"] for r in rows], dtype=np.float64)
    found = np.array([r["found"] for r in rows])
    d = np.array([r["d"] for r in rows])
    e, table = ece(conf, right)
    print(f"{len(rows)} pairs: right {right.mean():.3f}, found {found.mean():.3f}, ECE {e:.3f}")
    fw, rn = int(((d > 2) & found).sum()), int(((right == 1) & ~found).sum())
    print(
        f"found but wrong (>2 px): {fw} / {found.sum()} found; "
        f"right but not found: {rn} / {int(right.sum())} right"
    )
    _print_table(table)
    ok = right == 1
    for ce in (False, True):
        m = ok & (np.array([r["cal_error"] for r in rows]) == ce)
        if m.any():
            ds = np.abs([r["ds"] for r in np.array(rows)[m]])
            dr = np.abs([r["dr"] for r in np.array(rows)[m]])
            med = float(np.median([r["ds"] for r in np.array(rows)[m]]))
            print(
                f"cal_error={ce}: n={m.sum()} scale median {med:+.4f} med|e| {np.median(ds):.4f}"
                f" p90 {np.percentile(ds, 90):.4f}; rotation p90 {np.percentile(dr, 90):.3f}°"
            )
    sig = np.array([r["sig"] for r in rows])[ok]
    dd = d[ok]
    dsx = np.abs([r["ds"] for r in np.array(rows)[ok]])
    drx = np.abs([r["dr"] for r in np.array(rows)[ok]])
    cc = float(np.mean(dd <= 1.515 * sig[:, 0]))
    cs, cr = float(np.mean(dsx <= sig[:, 1])), float(np.mean(drx <= sig[:, 2]))
    print(
        f"σ coverage (right answers): centre {cc:.2f} (|d| ≤ 1.52σ, 2-D), scale {cs:.2f}, "
        f"rotation {cr:.2f}"
    )
    print(f"within 1.5 px: {float(np.mean(d < 1.5)):.3f}")


def _print_table(table: list) -> None:
    for lo, hi, n, c, r in table:
        print(f"  {lo:.1f}-{hi:.1f} n={n:3d} conf {c:.3f} right {r:.3f}")


def epu_goal() -> None:
    """The real EPU session: grid square ← foil hole with the metadata rotation and scale, the
    stage-predicted centre and ``max_shift_a`` of 10 reference px."""
    import glob

    from PIL import Image

    base = SHARED.parent / "epu_three_mag" / "Images-Disc1"
    for square, off in (
        ("GridSquare_8999138", (-3.3, 51.7)),
        ("GridSquare_8999186", (-21.5, 97.4)),
    ):
        gs = np.asarray(
            Image.open(glob.glob(str(base / square / "GridSquare_*.jpg"))[0]).convert("L"),
            dtype=np.float32,
        )
        prior = np.array([(gs.shape[1] - 1) / 2, (gs.shape[0] - 1) / 2]) + np.array(off)
        for path in sorted(glob.glob(str(base / square / "FoilHoles" / "*.jpg"))):
            fh = np.asarray(Image.open(path).convert("L"), dtype=np.float32)
            r = crossmag.align(
                gs,
                fh,
                reference_pixel_a=1.0,
                moving_pixel_a=0.03936,
                rotation_deg=172.56,
                expected_center=prior,
                max_shift_a=10.0,
            )
            print(
                f"{Path(path).name[:24]}: centre ({r.center[0]:.2f}, {r.center[1]:.2f}) ± "
                f"{r.center_sigma:.2f}, scale/metadata {r.scale / 0.03936 - 1:+.4f} ± "
                f"{r.scale_sigma:.4f}, rotation {r.rotation_deg:.2f} ± {r.rotation_sigma_deg:.2f},"
                f" found {r.found} ({r.confidence:.2f}), edge {r.at_search_edge}"
            )


if __name__ == "__main__":
    main(sys.argv[1:])
