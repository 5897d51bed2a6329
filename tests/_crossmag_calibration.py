"""Fit and check the calibrated confidence of ``crossmag.align`` (issue 12).

``python -m tests._crossmag_calibration fit``: generates the calibration set — pairs from the
synthetic specimen generator and from the real Leginon low-mag image of
``../shared/data/micrographs`` (not used by the tests; only the fitted weights, 7 numbers, are
shipped) — runs ``align`` with its defaults, and fits a logistic model of
P(centre within 1.5 reference px) on the result's measures; writes
``python/emgeom/crossmag/confidence_model.json``. ``... check`` evaluates the shipped model on
held-out pairs from the real micrograph the tests use (other seeds) and prints the reliability
table and the expected calibration error (ECE, 10 bins).
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


def _image(name: str) -> np.ndarray:
    return read_mrc(SHARED / name).data.astype(np.float32)


def run_pairs(img: np.ndarray, seed: int, n: int, other: np.ndarray | None = None) -> list[dict]:
    """``n`` pairs (issue-12 protocol: ×4 256² and ×6 300² with a stage-like prior, noise
    0.5–2× σ, half with calibration errors up to ±3 % / ±2°); with ``other``, every 8th pair
    takes its moving image from ``other`` (an unrelated image: always wrong)."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        six = i % 3 == 2
        p = micrograph_pair(
            img, rng, bin_=6.0 if six else 4.0, size=300 if six else 256, cal_error=i % 2 == 1
        )
        kw = dict(p["kw"])
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
        rows.append(
            {
                "x": C.features(
                    res.significance,
                    res.peak_ratio,
                    res.overlap,
                    res.center_sigma,
                    res.at_search_edge,
                    True,
                ).tolist(),
                "right": bool(d < C.TOLERANCE_PX and not unrelated),
                "d": d,
                "ds": ds,
                "dr": dr,
                "conf": res.confidence,
                "found": res.found,
                "sig": (res.center_sigma, res.scale_sigma, res.rotation_sigma_deg),
                "cal_error": i % 2 == 1,
                "unrelated": unrelated,
            }
        )
    return rows


def specimen_images() -> list[np.ndarray]:
    """Hole edge, hole lattice, and two nearly featureless fields (sparse particles on thin
    texture: the hard, mostly-not-found case)."""
    imgs = [
        syn.make_specimen((960, 960), pixel_a=1.0, seed=s, holes=h).image
        for s, h in ((21, "edge"), (22, "lattice"), (23, "edge"))
    ]
    imgs += [
        syn.make_specimen(
            (960, 960),
            pixel_a=px,
            seed=s,
            holes="none",
            n_particles=n,
            carbon_texture=0.02,
            n_contamination=c,
        ).image
        for s, px, n, c in ((24, 1.0, 400, 1), (25, 4.0, 3000, 2))
    ]
    return [np.asarray(i, dtype=np.float32) for i in imgs]


def fit_logistic(x: np.ndarray, y: np.ndarray, ridge: float = 1e-2) -> np.ndarray:
    """Logistic regression by Newton–Raphson (IRLS) with a small ridge on the weights."""
    a = np.hstack([np.ones((len(x), 1)), x])
    w = np.zeros(a.shape[1])
    for _ in range(100):
        p = 1.0 / (1.0 + np.exp(-np.clip(a @ w, -50, 50)))
        g = a.T @ (p - y) + ridge * np.r_[0.0, w[1:]]
        h = (a * (p * (1 - p))[:, None]).T @ a + ridge * np.diag(np.r_[0.0, np.ones(len(w) - 1)])
        step = np.linalg.solve(h, g)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w


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
    n = int(argv[1]) if len(argv) > 1 else 60
    if mode == "fit":
        rows = []
        imgs = specimen_images()
        for k, img in enumerate(imgs):
            rows += run_pairs(img, 100 + k, n, other=imgs[(k + 1) % len(imgs)])
        lowmag = _image("ptolemy_lowmag_20may08a_16760340.mrc")
        rows += run_pairs(lowmag, 200, n, other=imgs[0])
        x = np.array([r["x"] for r in rows])
        y = np.array([r["right"] for r in rows], dtype=np.float64)
        lo, hi = np.percentile(x, 1, axis=0), np.percentile(x, 99, axis=0)
        w = fit_logistic(np.clip(x, lo, hi), y)
        OUT.write_text(
            json.dumps(
                {
                    "features": list(C.FEATURES),
                    "weights": w.tolist(),
                    "clip": [lo.tolist(), hi.tolist()],
                    "tolerance_px": C.TOLERANCE_PX,
                    "n_pairs": len(rows),
                    "fraction_right": float(y.mean()),
                },
                indent=1,
            )
            + "\n"
        )
        C._model.cache_clear()
        conf = np.array([C.calibrated_confidence(np.array(r["x"])) for r in rows])
        e, table = ece(conf, y)
        print(f"fit: {len(rows)} pairs, right {y.mean():.3f}, ECE {e:.3f}")
        _print_table(table)
    else:
        mce = _image("mce_Ucsf_stack_1142_DW.mrc")
        rows = run_pairs(mce, 300, n, other=specimen_images()[1])
        report(rows)


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


if __name__ == "__main__":
    main(sys.argv[1:])
