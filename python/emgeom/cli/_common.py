"""Helpers shared by the sub-commands: JSON output and rich console."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import typer


def to_jsonable(value: Any) -> Any:
    """Convert numpy scalars/arrays (recursively) to plain JSON types; NaN becomes null."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, np.generic):
        return to_jsonable(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def echo_json(value: Any) -> None:
    """Print ``value`` as indented JSON on stdout."""
    typer.echo(json.dumps(to_jsonable(value), indent=2, sort_keys=False))
