"""dig compiler: compose Hydra config groups, validate, render and emit canonical OSMO workflows."""

import sys
from pathlib import Path

# The compiler injects packages/dig-stages into pods and calls a few of its pure functions at
# compile time; use that same source when the package is not installed (one `pip install -e .`).
_STAGES = Path(__file__).resolve().parent.parent / "packages" / "dig-stages"
try:  # pragma: no cover - depends on the environment
    import dig_stages  # noqa: F401
except ImportError:  # pragma: no cover
    if _STAGES.is_dir():
        sys.path.insert(0, str(_STAGES))
