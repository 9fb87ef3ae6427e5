"""Where things live: the config root, the repo root, the build directory."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
CONF_DIR = Path(os.environ.get("DIG_CONF_DIR", REPO_ROOT / "conf")).resolve()
BUILD_DIR = REPO_ROOT / "build"
GENERATED_DIR = REPO_ROOT / "workflows_generated"
GOLDEN_DIR = REPO_ROOT / "golden"
STAGES_DIR = REPO_ROOT / "packages" / "dig-stages" / "dig_stages"
SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"
TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"

GROUPS = ("flow", "usecase", "board", "endpoint", "knobs")


def group_options(group: str) -> list[str]:
    """The options of a config group, from the files in conf/<group>/."""
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))
