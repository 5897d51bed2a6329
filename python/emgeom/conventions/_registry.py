"""The registry itself: the Convention and Source records, registration and lookup. The
entries live in the sibling modules, one per quantity, which the package imports.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from emgeom.errors import InvalidValueError, UnknownConventionError

__all__ = ["Convention", "Source", "all_conventions", "get", "names", "register"]


@dataclass(frozen=True)
class Source:
    """Where a convention is documented or implemented.

    Attributes
    ----------
    program : str
        Program (and version) whose behaviour this is, e.g. ``"RELION 5.0"``.
    where : str
        Repository path + function, or a URL.
    repository : str
        ``owner/name`` of the source repository, when the source is code.
    note : str
        What this source shows.
    """

    program: str
    where: str
    repository: str = ""
    note: str = ""


@dataclass(frozen=True)
class Convention:
    """One program's convention for one quantity.

    Attributes
    ----------
    name : str
        Registry key within its quantity, e.g. ``"cryosparc"``.
    quantity : str
        ``"anisomag"``, ``"tilt"``, ...
    program : str
        Human name of the program.
    parameters : str
        What the user sees (fields, units, order).
    meaning : str
        The formula relating the stored numbers to emgeom's canonical form.
    sources : tuple of Source
        Provenance; the first is the primary one.
    confidence : str
        ``"high"``, ``"medium"`` or ``"low"``, with the reason in ``notes``.
    notes : str
        Ambiguities, disagreements between sources and the evidence for our choice.
    to_canonical, from_canonical : callable
        Converters between the stored numbers and the canonical value.
    aliases : tuple of str
        Other accepted names (``"motioncor3"`` for ``"motioncor2"``, ...).
    """

    name: str
    quantity: str
    program: str
    parameters: str
    meaning: str
    sources: tuple[Source, ...]
    confidence: str
    notes: str = ""
    to_canonical: Callable[..., Any] | None = field(default=None, repr=False, compare=False)
    from_canonical: Callable[..., Any] | None = field(default=None, repr=False, compare=False)
    aliases: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.sources:
            raise InvalidValueError(f"convention {self.name!r}: at least one source is required")
        if self.confidence not in ("high", "medium", "low"):
            raise InvalidValueError(
                f"convention {self.name!r}: confidence must be high/medium/low, "
                f"got {self.confidence!r}"
            )


_REGISTRY: dict[tuple[str, str], Convention] = {}
_ALIASES: dict[tuple[str, str], str] = {}


def _key(name: str) -> str:
    return name.strip().lower().replace("-", "").replace("_", "").replace(" ", "")


def register(convention: Convention) -> Convention:
    """Add a convention to the registry (names are case- and punctuation-insensitive)."""
    key = (convention.quantity, _key(convention.name))
    if key in _REGISTRY or key in _ALIASES:
        raise InvalidValueError(f"convention {convention.name!r} is already registered")
    _REGISTRY[key] = convention
    for alias in convention.aliases:
        _ALIASES[(convention.quantity, _key(alias))] = key[1]
    return convention


def get(quantity: str, name: str) -> Convention:
    """Look up a convention by quantity and (case-insensitive) name or alias."""
    if not isinstance(name, str):
        raise UnknownConventionError(f"convention name must be a string, got {name!r}")
    k = _key(name)
    k = _ALIASES.get((quantity, k), k)
    try:
        return _REGISTRY[(quantity, k)]
    except KeyError:
        known = ", ".join(names(quantity)) or "(none)"
        raise UnknownConventionError(
            f"unknown {quantity} convention {name!r}; known: {known}"
        ) from None


def names(quantity: str) -> list[str]:
    """Names of the registered conventions for ``quantity``."""
    return sorted(c.name for (q, _), c in _REGISTRY.items() if q == quantity)


def all_conventions() -> Iterator[Convention]:
    """Every registered convention (the package imports every quantity's entries)."""
    yield from _REGISTRY.values()
