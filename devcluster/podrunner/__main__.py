"""``python -m podrunner`` (with devcluster/ on the module path, as devcluster/up.sh runs it)."""

import sys

from .main import main

sys.exit(main())
