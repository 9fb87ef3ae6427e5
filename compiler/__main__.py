"""`python -m compiler [-m] key=value ...`: compile one DIG workflow (or a sweep) into an OSMO YAML.

    python -m compiler flow=day0 usecase=pcb
    python -m compiler flow=day1 usecase=glass knobs=smoke name=day1-1a2b3c4d
    python -m compiler -m flow=day0 knobs.crop_max_emit=1,5,10 knobs.num_sdg=15,30

Writes exactly one file (build/<compile key>[__<override hash>].yaml unless out=) and prints its
path as the last line. Errors name the key, what was given and what is allowed; nothing is written
on error. DIG_FULL_ERROR=1 shows tracebacks.
"""

from __future__ import annotations

import sys

from compiler.cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
