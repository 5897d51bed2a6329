"""pandas and starfile, loaded when a STAR table is first read or written.

Importing pandas costs about 0.3–0.5 s of CPU. emgeom is imported once per SerialEM script run
and once per ``emgeom`` command, and most of those never touch a STAR file, so the STAR readers
and writers reach pandas and starfile through these accessors instead of a module-level import.
This is the one place that defers them; nothing here dodges an import cycle (neither package
imports emgeom).
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeGuard

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["frame", "is_frame", "pandas", "starfile"]


def pandas() -> ModuleType:
    """The ``pandas`` module (imported on the first call; later calls are a dict lookup)."""
    return importlib.import_module("pandas")


def starfile() -> ModuleType:
    """The ``starfile`` module (imports pandas too)."""
    return importlib.import_module("starfile")


def frame(*args: Any, **kwargs: Any) -> pd.DataFrame:
    """``pandas.DataFrame(*args, **kwargs)``."""
    df: pd.DataFrame = pandas().DataFrame(*args, **kwargs)
    return df


def is_frame(value: object) -> TypeGuard[pd.DataFrame]:
    """Whether ``value`` is a ``pandas.DataFrame``, without importing pandas: if pandas was never
    imported, nothing can be one.
    """
    pd_module = sys.modules.get("pandas")
    return pd_module is not None and isinstance(value, pd_module.DataFrame)
