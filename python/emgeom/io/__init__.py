"""File-format adapters. Unit conversions (µm, nm, radians) happen here and nowhere else."""

from emgeom.io.mdoc import read_mdoc
from emgeom.io.montage import read_montage
from emgeom.io.serialem_nav import read_nav, write_nav

__all__ = ["read_mdoc", "read_montage", "read_nav", "write_nav"]
