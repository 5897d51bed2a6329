"""CLI smoke tests in a bare install (``pip install emgeom`` with no extras): what a user gets.

Run by ``make bare-check`` (``.ci/run`` after the main suite) with the bare venv's Python:
standard library only, because the bare venv has no pytest. Checks usage errors (one line on
stderr, exit code 2, no traceback), ``--help``, the README's forum question, and ``emgeom demo``
into a temporary folder (without matplotlib: report and MRC files, no figures, and a note
saying how to get them: matplotlib stays an optional extra, see README).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

BIN = Path(sys.executable).parent
EMGEOM = str(BIN / "emgeom")
FORUM = ["-0.00571369", "-0.00932393", "-0.01013075", "0.00451204"]
failures: list[str] = []


def run(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the bare venv's ``emgeom`` console script."""
    return subprocess.run([EMGEOM, *args], capture_output=True, text=True, timeout=600)


def check(name: str, ok: bool, detail: str = "") -> None:
    """Print one result line; remember a failure."""
    print(f"{'ok  ' if ok else 'FAIL'} {name}")
    if not ok:
        failures.append(f"{name}: {detail[-1500:]}")


for argv in ([], ["foo"], ["--bogus"], ["crossmag", "align", "--threads", "abc", "a", "b"]):
    p = run(*argv)
    lines = p.stderr.strip().splitlines()
    check(
        f"usage error: emgeom {' '.join(argv)}",
        p.returncode == 2 and len(lines) == 1 and "Traceback" not in p.stderr,
        f"rc={p.returncode} stderr={p.stderr!r}",
    )

p = run("--help")
check("emgeom --help", p.returncode == 0 and "demo" in p.stdout, p.stderr)

p = run(
    "anisomag", "convert", "--from", "cryosparc", "--to", "motioncor2",
    "--determinant", "0.99867812", "--", *FORUM,
)  # fmt: skip
check(
    "README forum question",
    p.returncode == 0 and "-Mag 1.011726 0.989718 58.875" in p.stdout and "agrees" in p.stdout,
    p.stdout + p.stderr,
)

p = run("anisomag", "convert", "--from", "cryosparc", "--determinant", "nan", "--", *FORUM)
check("non-finite --determinant refused", p.returncode == 2, p.stdout + p.stderr)

with tempfile.TemporaryDirectory() as tmp:
    out = Path(tmp) / "demo"
    p = run("demo", "-o", str(out))
    report = out / "report.txt"
    probe = [sys.executable, "-c", "import matplotlib"]
    has_mpl = subprocess.run(probe, capture_output=True).returncode == 0
    ok = p.returncode == 0 and report.is_file() and (out / "micrograph_corrected.mrc").is_file()
    if has_mpl:
        ok = ok and (out / "anisomag_ellipse.png").is_file()
    else:
        ok = ok and "pip install 'emgeom[plot]'" in report.read_text()
    check("emgeom demo -o TMP", ok, p.stdout + p.stderr)
    p = run("demo", "-o", str(report))
    check("emgeom demo -o FILE refused", p.returncode == 2 and "Traceback" not in p.stderr)

if failures:
    print("\n".join(failures), file=sys.stderr)
    sys.exit(1)
print("bare-install check passed")
