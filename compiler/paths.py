"""Where things live: the config root, the stage sources, the build directory."""

from __future__ import annotations

import os
from pathlib import Path

import dig_stages

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent
# A source checkout keeps conf/ at the repo root; an installed wheel ships the same files as the
# package data compiler/conf (pyproject.toml maps conf/ there), so both read one set of files.
_SOURCE_TREE = (REPO_ROOT / "pyproject.toml").is_file() and (REPO_ROOT / "conf" / "config.yaml").is_file()
_DEFAULT_CONF = REPO_ROOT / "conf" if _SOURCE_TREE else PACKAGE_DIR / "conf"
CONF_DIR = Path(os.environ.get("DIG_CONF_DIR", _DEFAULT_CONF)).resolve()
# Installed, default output goes under the working directory's build/ (never into site-packages).
BUILD_DIR = REPO_ROOT / "build" if _SOURCE_TREE else Path.cwd() / "build"
GENERATED_DIR = REPO_ROOT / "workflows_generated"
GOLDEN_DIR = REPO_ROOT / "golden"
# The modules injected into pods are the installed dig_stages package's own files (the ones its tests ran).
STAGES_DIR = Path(dig_stages.__file__).resolve().parent
SCHEMA_DIR = PACKAGE_DIR / "schemas"
TEMPLATE_DIR = PACKAGE_DIR / "templates"

GROUPS = ("flow", "usecase", "board", "endpoint", "knobs")


def group_options(group: str, searchpath: tuple[Path, ...] | list[Path] = ()) -> list[str]:
    """The options of a config group: the files in conf/<group>/ and in each search-path dir's <group>/.

    A name starting with `_` is a base that options extend through their defaults list, not an option.
    """
    dirs = [CONF_DIR, *(Path(d) for d in searchpath)]
    return sorted({p.stem for d in dirs for p in (d / group).glob("*.yaml") if not p.stem.startswith("_")})
