"""The numpy oracles stand alone (issue 16).

Every module of ``emgeom.reference`` mirrors one Rust kernel and imports nothing from the
production modules (an oracle that reuses production code cannot catch its bugs).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import emgeom.reference as reference
from emgeom.crossmag._geometry import nice_size
from emgeom.reference.logpolar import _nice

REF = Path(reference.__file__).parent


def _imported_modules(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.extend(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append(node.module)
        elif isinstance(node, ast.ImportFrom):
            out.append("." * node.level + (node.module or ""))
    return out


ORACLES = sorted(p.stem for p in REF.glob("*.py"))


def test_one_oracle_module_per_kernel() -> None:
    kernels = Path(__file__).resolve().parents[2] / "rust" / "kernels" / "src"
    names = {p.stem for p in kernels.glob("*.rs")} | {
        p.name for p in kernels.iterdir() if p.is_dir()
    }
    assert [o for o in ORACLES if o != "__init__" and o not in names] == []


@pytest.mark.parametrize("name", ORACLES)
def test_oracle_imports_no_production_module(name: str) -> None:
    mods = _imported_modules(REF / f"{name}.py")
    production = [
        m for m in mods if m.startswith("emgeom") and not m.startswith("emgeom.reference")
    ]
    assert production == [], f"reference/{name}.py imports {production}"
    assert not [m for m in mods if m.startswith("..")], mods


def test_the_oracle_padding_size_is_the_kernel_rule() -> None:
    # fft::nice_size: smallest even (or 1) m >= n with prime factors 2, 3, 5
    assert [_nice(n) for n in (0, 1, 2, 7, 11, 1024, 1229, 2047)] == [
        1,
        1,
        2,
        8,
        12,
        1024,
        1250,
        2048,
    ]
    assert all(_nice(n) == nice_size(n) for n in range(1, 3000))
