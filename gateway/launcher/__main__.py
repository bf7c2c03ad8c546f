"""``python -m gateway.launcher``: see :mod:`gateway.launcher.main`."""

import sys

from .main import main

sys.exit(main())
