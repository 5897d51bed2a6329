"""``python -m emgeom``: the same as the ``emgeom`` command."""

import sys

from emgeom.cli import main

sys.exit(main())
