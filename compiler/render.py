"""Render task launchers (Jinja2, StrictUndefined) and cookbook files with the knobs already applied."""

from __future__ import annotations

import copy
import json
from functools import lru_cache
from typing import Any

import jinja2

from compiler.emit import dump_yaml
from compiler.paths import TEMPLATE_DIR


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    """The one Jinja environment: templates from the package, undefined variables are errors."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )


def launcher(*, task: str, summary: str, step: str, python: str = "python3") -> str:
    return (
        environment()
        .get_template("launcher.sh.j2")
        .render(task=task, summary=summary, step=step, python=python)
    )


def spec_json(spec: dict[str, Any]) -> str:
    return json.dumps(spec, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n"


def cookbook_text(data: dict[str, Any], source: str) -> str:
    # Most sweep variants share their cookbooks: dump each distinct one once.
    return _cookbook_text(json.dumps(data, sort_keys=False, allow_nan=False), source)


@lru_cache(maxsize=256)
def _cookbook_text(data_json: str, source: str) -> str:
    return f"# {source}, rendered by dig with the run's knobs applied.\n" + dump_yaml(json.loads(data_json))


def day0_image(book: dict[str, Any], target: dict[str, Any], render_patches: int) -> dict[str, Any]:
    out = copy.deepcopy(book)
    out["max_image_count"] = render_patches
    # sdg_pipeline.py raises KeyError('horizontal_aperture') without it (spec A42): same guard as upstream.
    if "horizontal_aperture" not in out and "horizontal_aperture" not in target:
        out["horizontal_aperture"] = 200.0
    return out


def day0_crop(book: dict[str, Any], crop_max_emit: Any) -> dict[str, Any]:
    out = copy.deepcopy(book)
    if crop_max_emit != "":  # blank keeps the cookbook's cap; null removes it; N caps
        out["crop"]["max_emit"] = crop_max_emit
    return out


def defect_image(book: dict[str, Any], render_patches: int, modes: list[str] | None) -> dict[str, Any]:
    out = copy.deepcopy(book)
    out["max_image_count"] = render_patches
    out["output"] = "__OUTPUT__"
    if modes is not None:  # `all` keeps the cookbook's own flags
        for mode in out.get("defects", {}):
            out["defects"][mode]["enabled"] = mode in modes
    return out
