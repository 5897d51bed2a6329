"""Exceptions and warnings raised by emgeom.

Every exception derives from :class:`EmgeomError` *and* from the built-in exception a user
already catches for that kind of problem, so ``except ValueError`` keeps working in scripts that
do not know emgeom:

=============================  ======================================  ==========================
class                          raised for                              also an instance of
=============================  ======================================  ==========================
:class:`InvalidValueError`     a bad number, NaN/inf, out-of-range     ``ValueError``
:class:`ShapeError`            an array of the wrong shape             ``ValueError``
:class:`InvalidTypeError`      the wrong kind of object                ``TypeError``
:class:`UnknownConventionError` a convention name not in the registry  ``ValueError``, ``KeyError``
:class:`FileFormatError`       a file that cannot be parsed            ``ValueError``
:class:`EmgeomFileError`       a missing/unreadable file               ``OSError``
:class:`OutputExistsError`     refusing to overwrite without force     ``FileExistsError``
:class:`MissingDependencyError` an optional extra is not installed     ``ImportError``
:class:`InternalError`         a bug inside emgeom (please report)     ``RuntimeError``
=============================  ======================================  ==========================

Messages always name the argument, what was expected and what was given.
"""

from __future__ import annotations

__all__ = [
    "EmgeomError",
    "EmgeomFileError",
    "EmgeomWarning",
    "FileFormatError",
    "ImplausibleValueWarning",
    "InternalError",
    "InvalidTypeError",
    "InvalidValueError",
    "LossyConversionWarning",
    "MissingDependencyError",
    "OutputExistsError",
    "ShapeError",
    "UnknownConventionError",
]


class EmgeomError(Exception):
    """Base class of every exception raised by emgeom."""


class InvalidValueError(EmgeomError, ValueError):
    """An argument has a bad value (NaN/inf, out of range, singular, ...)."""


class ShapeError(InvalidValueError):
    """An array argument has the wrong shape or is empty."""


class InvalidTypeError(EmgeomError, TypeError):
    """An argument has the wrong type."""


class UnknownConventionError(InvalidValueError, KeyError):
    """A convention name that the registry does not know."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0]) if self.args else ""


class FileFormatError(EmgeomError, ValueError):
    """A file exists but its content cannot be understood."""


class EmgeomFileError(EmgeomError, OSError):
    """A file cannot be found, read or written.

    ``errno`` and ``filename`` are those of the operating-system error it wraps (if any); the
    message is emgeom's own one-line message naming the path.
    """

    def __str__(self) -> str:  # OSError would format "[Errno n] strerror: filename"
        return str(self.args[0]) if len(self.args) == 1 else super().__str__()


class OutputExistsError(EmgeomFileError, FileExistsError):
    """The output file exists and overwriting was not requested (``force=True`` / ``--force``)."""


class MissingDependencyError(EmgeomError, ImportError):
    """An optional dependency (extra) is needed for this function but not installed."""


class InternalError(EmgeomError, RuntimeError):
    """Something failed inside emgeom that input validation should have prevented: a bug."""


class EmgeomWarning(UserWarning):
    """Base class of every warning emitted by emgeom."""


class ImplausibleValueWarning(EmgeomWarning):
    """A value is valid but physically implausible (e.g. anisotropy above 20 %)."""


class LossyConversionWarning(EmgeomWarning):
    """The target convention cannot represent part of the value (e.g. a rotation)."""
