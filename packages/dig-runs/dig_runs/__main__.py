"""`python -m dig_runs VERB ...` (same as the `dig-runs` console script and `dig VERB`)."""

import sys

from dig_runs.cli import main

sys.exit(main())
