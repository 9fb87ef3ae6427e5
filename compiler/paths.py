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


def group_options(group: str, searchpath: tuple[Path, ...] | list[Path] = ()) -> list[str]:
    """The options of a config group: the files in conf/<group>/ and in each search-path dir's <group>/.

    A name starting with `_` is a base that options extend through their defaults list, not an option.
    """
    dirs = [CONF_DIR, *(Path(d) for d in searchpath)]
    return sorted({p.stem for d in dirs for p in (d / group).glob("*.yaml") if not p.stem.startswith("_")})
