"""Knob types: one JSON Schema fragment per knob name (spec/knobs.md), and compile-time normalisation."""

from __future__ import annotations

import json
from typing import Any

from compiler.errors import error
from compiler.osmo import DOCKER_REF_RE
from compiler.osmo.findings import NAME_RE

# OSMO's name rule (osmo_rules.md): workflow, group and task names, as the output validator has it.
OSMO_NAME = NAME_RE.pattern
# Run names end up in URLs, env values, file names and shell words: keep them boring.
RUN_NAME = r"^[A-Za-z0-9]([A-Za-z0-9_-]{0,62}[A-Za-z0-9])?$"
# A unit is required: OSMO reads a bare number as bytes (`64` -> 0.0625Ki, rejected).
QUANTITY = r"^[0-9]+(\.[0-9]+)?(Ti|TiB|T|Gi|GiB|G|Mi|MiB|M|Ki|KiB|K|B)$"
DURATION = r"^([0-9]+(ms|us|[smhd])|P(T?[0-9]+[DHMS])+)$"
# docker reference: [registry/]path[:tag][@digest], the same grammar the output validator applies
IMAGE = DOCKER_REF_RE.pattern
STORAGE_URL = r"^(s3|gs|swift|tos|azure)://[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9._=+@-]+)*/?$"
TAXON = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
DEFECT_MODES = ("shift", "tombstone", "sideflip")

_gpu = {"type": "integer", "minimum": 1, "maximum": 64}
_cpu = {"type": "integer", "minimum": 1, "maximum": 1024}
_qty = {"type": "string", "pattern": QUANTITY}
_image = {"type": "string", "pattern": IMAGE, "maxLength": 255}

KNOB_SCHEMAS: dict[str, dict[str, Any]] = {
    "workflow_name": {"type": "string", "pattern": OSMO_NAME, "maxLength": 64},
    "exec_timeout": {"type": "string", "pattern": DURATION},
    "queue_timeout": {"type": "string", "pattern": DURATION},
    "use_pretrained_checkpoint": {"type": "boolean"},
    "use_usd2roi_day1": {"type": "boolean"},
    "checkpoint_step": {"type": "integer", "minimum": 1, "maximum": 999_999_999},
    "num_sdg": {"type": "integer", "minimum": 1, "maximum": 1_000_000},
    "default_spatial_dependency": {"enum": ["free", "text", "cad"]},
    "roi_prompt": {
        "type": ["string", "null"],
        "minLength": 1,
        "maxLength": 500,
        "pattern": r"^[^\x00-\x1f\x7f]*$",
    },
    "model_size": {"enum": ["2b", "14b"]},
    "anomaly_types_json": {
        "type": "array",
        "minItems": 1,
        "maxItems": 64,
        "items": {
            "type": "array",
            "minItems": 2,
            "maxItems": 2,
            "items": {"type": "string", "pattern": TAXON},
        },
    },
    "anomalygen_image": _image,
    "augmentation_image": _image,
    "usd2roi_image": _image,
    "isaac_render_image": _image,
    "pretrained_image": _image,
    "render_patches": {
        "type": "integer",
        "anyOf": [{"const": -1}, {"minimum": 1, "maximum": 10_000}],
        "description": "-1 (every scan-grid cell) or a number of patches >= 1 (0 renders nothing)",
    },
    "crop_max_emit": {
        "anyOf": [{"const": ""}, {"type": "null"}, {"type": "integer", "minimum": 1, "maximum": 100_000}],
        "description": "'' (keep the cookbook cap), null (no cap) or an integer >= 1",
    },
    "scene_filename": {
        "type": "string",
        "pattern": r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}\.(usd|usda|usdc|usdz)$",
    },
    "real_image_filename": {
        "type": "string",
        "maxLength": 255,
        "pattern": r"^[A-Za-z0-9_][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)*(/[A-Za-z0-9_][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)*)*\.(jpg|jpeg|png|tif|tiff|bmp)$",
    },
    "defect_modes": {
        "type": "string",
        "x-dig-list": ",",
        "pattern": r"^(all|(shift|tombstone|sideflip)(,(shift|tombstone|sideflip))*)$",
    },
    "crop_offset": {"type": "integer", "minimum": 0, "maximum": 1000},
    "render_gpu": _gpu,
    "augment_gpu": _gpu,
    "infer_gpu": _gpu,
    "train_gpu": _gpu,
    "render_cpu": _cpu,
    "augment_cpu": _cpu,
    "infer_cpu": _cpu,
    "train_cpu": _cpu,
    "cpu": _cpu,
    "cpu_large": _cpu,
    "render_memory": _qty,
    "augment_memory": _qty,
    "infer_memory": _qty,
    "train_memory": _qty,
    "render_storage": _qty,
    "augment_storage": _qty,
    "infer_storage": _qty,
    "train_storage": _qty,
    "memory": _qty,
    "storage": _qty,
    "memory_large": _qty,
    "storage_large": _qty,
    "platform": {"type": "string", "pattern": OSMO_NAME, "maxLength": 64},
    "pretrained_model_sizes": {"type": "string", "x-dig-list": " ", "pattern": r"^(2B|14B)( (2B|14B))*$"},
    "uc3_zip_url_root": {"type": ["string", "null"], "pattern": STORAGE_URL, "maxLength": 1024},
}

# Knobs whose string value is a list with this separator (upstream spelling); [a,b] is accepted too.
LIST_KNOBS = {name: frag["x-dig-list"] for name, frag in KNOB_SCHEMAS.items() if "x-dig-list" in frag}

TOP_LEVEL_SCHEMAS: dict[str, dict[str, Any]] = {
    "name": {"type": ["string", "null"], "pattern": RUN_NAME, "maxLength": 64},
    "dig_url_root": {"type": ["string", "null"], "pattern": STORAGE_URL, "maxLength": 1024},
    "pool": {"type": ["string", "null"], "pattern": OSMO_NAME, "maxLength": 64},
    "out": {"type": ["string", "null"], "minLength": 1, "maxLength": 4096, "pattern": r"^[^\x00-\x1f]*$"},
    "strict": {"type": "boolean"},
}

# Where a user reads about each family of mistakes.
_HINTS = {
    QUANTITY: "a quantity with a unit, e.g. 64Gi (OSMO reads a bare number as bytes)",
    RUN_NAME: "letters, digits, '-' and '_' (starting and ending with a letter or digit), at most 64 characters",
    STORAGE_URL: "an OSMO storage prefix such as s3://bucket/prefix (schemes s3, gs, swift, tos, azure)",
    OSMO_NAME: "letters, digits, '-' and '_', starting with a letter",
}


def pattern_hint(pattern: str) -> str | None:
    return _HINTS.get(pattern)


def normalise_knobs(knobs: dict[str, Any]) -> dict[str, Any]:
    """Resolve the spellings the upstream took as strings into real types, once (invariant 3)."""
    out = dict(knobs)
    for key, sep in LIST_KNOBS.items():  # list form [a,b] of a string list knob -> its upstream spelling
        if isinstance(out.get(key), (list, tuple)) and all(isinstance(v, str) for v in out[key]):
            out[key] = sep.join(out[key])
    raw = out.get("anomaly_types_json")
    if isinstance(raw, str):
        try:
            out["anomaly_types_json"] = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise error(
                "knobs.anomaly_types_json",
                "is not valid JSON; give a list of [material, defect] pairs",
                got=raw,
                allowed='[["IC","bridge"],["passive_component","missing"]] (or Hydra list syntax)',
                rule="A18",
            ) from exc
    for key in ("use_pretrained_checkpoint", "use_usd2roi_day1"):
        value = out.get(key)
        if key in out and not isinstance(value, bool):
            raise error(
                f"knobs.{key}",
                "takes a real boolean: write true or false",
                got=value,
                allowed="true, false",
                rule="A10",
            )
    return out


# The failure mode of spec/failure_modes.md that a schema error on a key stands for (the rule id the
# error carries); keys not listed are OSMO's own value rules.
FAILURE_MODE_BY_KEY: dict[str, str] = {
    "name": "A1",
    "dig_url_root": "A3",
    "knobs.uc3_zip_url_root": "A4",
    "knobs.use_pretrained_checkpoint": "A10",
    "knobs.use_usd2roi_day1": "A10",
    "knobs.crop_max_emit": "A12",
    "knobs.render_patches": "A13",
    "knobs.defect_modes": "A16",
    "knobs.anomaly_types_json": "A18",
    "knobs.default_spatial_dependency": "A22",
    "knobs.model_size": "A23",
    "knobs.real_image_filename": "A25",
    "knobs.scene_filename": "B2",
    "cookbooks.defect_image.component_types": "A40",
    "cookbooks.defect_image.writer.semantic_types": "A43",
}


def failure_mode(key: str, validator: str) -> str:
    """Rule id for a schema error at `key` (dotted, list indexes allowed)."""
    if validator == "additionalProperties":
        return "A11"
    if validator == "const":
        return "A45"
    base = key.split("[", 1)[0]
    if base in FAILURE_MODE_BY_KEY:
        return FAILURE_MODE_BY_KEY[base]
    if base.endswith(("_memory", "_storage", ".memory", ".storage", "_large")):
        return "A28"
    if base.startswith("cookbooks.") and (".crop." in base or ".semantics" in base):
        return "A44"
    return "OSMO"
