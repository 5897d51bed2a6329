"""`import emgeom` stays cheap: SerialEM runs each Python script in a fresh process and every
`emgeom` command imports the package, so heavy optional modules load only when used."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("pandas", "starfile", "pyarrow", "matplotlib", "scipy")


def test_importing_every_public_package_loads_no_heavy_module() -> None:
    code = (
        "import sys, emgeom, emgeom.io, emgeom.tilt, emgeom.crossmag, emgeom.serialem, "
        "emgeom.anisomag, emgeom.model, emgeom.cli; "
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == ""


def test_reading_a_star_table_loads_pandas_then(tmp_path) -> None:
    code = (
        "import sys; from emgeom.io.star import read_star, loop; "
        f"b = read_star({str(tmp_path / 't.star')!r}); "
        "print('pandas' in sys.modules, loop(b['x']) is not None)"
    )
    (tmp_path / "t.star").write_text("data_x\n\nloop_\n_rlnA #1\n1.5\n2.5\n")
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["True", "True"]
