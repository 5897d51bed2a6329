"""The one export mechanism: eager re-exports in ``emgeom``, ``emgeom.tilt``, ``emgeom.crossmag``
and ``emgeom.io``. Every ``__all__`` name resolves, is typed (bound by a real import or
definition, annotated, never ``Any`` through a module ``__getattr__``) and has an API page under
its public path; the package import graph has no cycle (model → io → workflows → cli).
"""

from __future__ import annotations

import ast
import graphlib
import importlib
import inspect
import re
import types
from functools import cache
from pathlib import Path
from typing import Any

import pytest

import emgeom

PACKAGES = ("emgeom", "emgeom.tilt", "emgeom.crossmag", "emgeom.io")
ROOT = Path(emgeom.__file__).parent
DOCS = Path(__file__).resolve().parents[2] / "docs"
CASES = [(p, n) for p in PACKAGES for n in importlib.import_module(p).__all__]


def _init_source(package: str) -> ast.Module:
    module = importlib.import_module(package)
    return ast.parse(Path(module.__file__ or "").read_text(encoding="utf-8"))


def _bound_names(tree: ast.Module) -> set[str]:
    """Names a static type checker sees bound at module level (imports and assignments)."""
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom | ast.Import):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.FunctionDef | ast.ClassDef):
            names.add(node.name)
    return names


def _unannotated(func: Any, where: str) -> list[str]:
    sig = inspect.signature(func)
    bad = [
        f"{where}({p.name})"
        for i, p in enumerate(sig.parameters.values())
        if p.annotation is inspect.Parameter.empty and not (i == 0 and p.name in ("self", "cls"))
    ]
    if sig.return_annotation is inspect.Signature.empty and func.__name__ != "__init__":
        bad.append(f"{where} -> ?")
    return bad


def _untyped(obj: Any, where: str, owner: types.ModuleType) -> list[str]:
    """Why ``obj`` would not be precisely typed for a user's type checker ([] if it is)."""
    if isinstance(obj, types.ModuleType):
        return []
    if inspect.isfunction(obj):
        return _unannotated(obj, where)
    if inspect.isclass(obj):
        bad = []
        for name, member in vars(obj).items():
            if name.startswith("_") and name != "__init__":
                continue
            if isinstance(member, classmethod | staticmethod):
                member = member.__func__
            if isinstance(member, property) and member.fget is not None:
                member = member.fget
            if inspect.isfunction(member):
                bad += _unannotated(member, f"{where}.{name}")
        return bad
    # a constant: annotated where it is defined, or a literal whose type mypy infers exactly
    literal = (str, int, float, bool, tuple, frozenset)
    if where.rsplit(".", 1)[-1] in getattr(owner, "__annotations__", {}):
        return []
    items = obj if isinstance(obj, tuple | frozenset) else ()
    if isinstance(obj, literal) and all(isinstance(v, str | int | float) for v in items):
        return []
    return [f"{where}: {type(obj).__name__} constant without an annotation"]


@pytest.mark.parametrize("package", PACKAGES)
def test_one_export_mechanism_eager_and_static(package):
    module = importlib.import_module(package)
    # no PEP 562 facade: a module __getattr__ types every missing name as Any
    assert "__getattr__" not in vars(module) and "__dir__" not in vars(module)
    names = module.__all__
    assert len(names) == len(set(names)) and names
    unbound = set(names) - _bound_names(_init_source(package))
    assert unbound == set(), f"{package}.__all__ names not bound statically: {sorted(unbound)}"


@pytest.mark.parametrize(("package", "name"), CASES)
def test_every_exported_name_resolves_and_is_typed(package, name):
    module = importlib.import_module(package)
    obj = getattr(module, name)
    assert obj is not None
    owner = importlib.import_module(getattr(obj, "__module__", None) or package)
    if not (inspect.isfunction(obj) or inspect.isclass(obj)):
        owner = module
    assert _untyped(obj, f"{package}.{name}", owner) == []


def test_the_top_level_lists_every_public_submodule():
    """``synthetic``, ``simulate`` and ``serialem`` were missing; every public module or package
    directly in emgeom (except the CLI and the leaf model the workflows re-export) is listed.
    """
    public = {
        p.stem if p.is_file() else p.name
        for p in ROOT.iterdir()
        if not p.name.startswith("_")
        and (p.suffix == ".py" or (p / "__init__.py").is_file())
        and p.name not in ("cli", "model")
    }
    assert public - set(emgeom.__all__) == set()
    assert {"synthetic", "simulate"} <= set(emgeom.__all__)


# ------------------------------------------------------------------------------- API pages
@cache
def _griffe_package(package: str) -> Any:
    griffe = pytest.importorskip("griffe")
    return griffe.load(package, search_paths=[str(ROOT.parent)], resolve_aliases=False)


@cache
def _nav_pages() -> set[str]:
    text = (DOCS.parent / "mkdocs.yml").read_text(encoding="utf-8")
    return set(re.findall(r":\s*(api/[\w/.-]+\.md)\s*$", text, flags=re.M))


@cache
def _directives() -> dict[str, str]:
    """``::: identifier`` of every API page in the nav → page."""
    out = {}
    for page in _nav_pages():
        for ident in re.findall(r"^:::\s*([\w.]+)", (DOCS / page).read_text("utf-8"), re.M):
            out[ident] = page
    return out


def test_api_pages_use_public_paths():
    private = [f"{p}: {i}" for i, p in _directives().items() if "._" in i]
    assert private == []


@pytest.mark.parametrize(("package", "name"), CASES)
def test_every_exported_name_has_an_api_page_under_its_public_path(package, name):
    """A page documents ``package.name`` itself, or ``package`` whole: mkdocstrings then renders
    every ``__all__`` member that has a docstring (griffe, the loader it uses, decides).
    """
    directives = _directives()
    path = f"{package}.{name}"
    if isinstance(getattr(importlib.import_module(package), name), types.ModuleType):
        # a module: a page documents it whole or its members (emgeom.serialem: its classes)
        assert any(d == path or d.startswith(path + ".") for d in directives), path
        return
    assert path in directives or package in directives, f"no API page shows {path}"
    if path in directives:
        return
    member = _griffe_package(package)[name]
    assert member.is_public, f"{path} is not public for griffe"
    assert member.docstring is not None, f"{path} has no docstring: mkdocstrings hides it"
    assert member.is_exported


# --------------------------------------------------------------------- one-way dependencies
def _package_graph() -> dict[str, set[str]]:
    """Top-level emgeom module/package → the emgeom modules its files import at module level."""
    graph: dict[str, set[str]] = {}
    for f in ROOT.rglob("*.py"):
        rel = f.relative_to(ROOT)
        if rel == Path("__init__.py"):
            continue  # the root re-exports everything
        node = rel.parts[0].removesuffix(".py")
        for stmt in ast.parse(f.read_text(encoding="utf-8")).body:
            if isinstance(stmt, ast.ImportFrom) and (stmt.module or "").startswith("emgeom"):
                parts = stmt.module.split(".")
                deps = [a.name for a in stmt.names] if len(parts) == 1 else [parts[1]]
            elif isinstance(stmt, ast.Import):
                deps = [a.name.split(".")[1] for a in stmt.names if a.name.startswith("emgeom.")]
            else:
                continue
            graph.setdefault(node, set()).update(d for d in deps if d != node)
    return graph


def test_package_imports_point_one_way():
    graph = _package_graph()
    order = list(graphlib.TopologicalSorter(graph).static_order())  # raises CycleError
    assert order.index("model") < order.index("io") < order.index("tilt")
    # the model is a leaf: io reads files into it without executing emgeom.tilt
    assert graph["model"] <= {"_core", "_validate", "errors"}
    assert "tilt" not in graph["io"]
