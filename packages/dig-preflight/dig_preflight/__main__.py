"""Entry point for `python -m dig_preflight`."""

import sys

from .cli import main

sys.exit(main())
