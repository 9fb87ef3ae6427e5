"""The JSON Schema (Draft 2020-12) of the composed config, generated from conf/ and exported for editors.

    python -m compiler.schema            # write compiler/schemas/config.schema.json
    python -m compiler.schema --check    # exit 1 if the committed schema is stale

Knob fragments come from compiler.knobs; the knob set of each flow variant and the shape of each
cookbook (every shipped field, its type, nothing else) are read off the config groups.
"""

from __future__ import annotations

import json
import sys
from functools import lru_cache
from typing import Any

from compiler.knob_docs import KNOB_MEANINGS
from compiler.knobs import KNOB_SCHEMAS, TAXON, TOP_LEVEL_SCHEMAS
from compiler.paths import CONF_DIR, SCHEMA_DIR, group_options

SCHEMA_PATH = SCHEMA_DIR / "config.schema.json"
DRAFT = "https://json-schema.org/draft/2020-12/schema"

_NAME = {"type": "string", "pattern": TAXON}  # becomes a directory or a label: no '/', '..', spaces


def _sentinel(value: str) -> dict[str, Any]:
    return {"const": value, "description": f"filled in the pod ({value}); not a setting"}


# Cookbook fields whose shipped value does not show every type or constraint they take.
COOKBOOK_FIELD_OVERRIDES: dict[str, dict[str, Any]] = {
    "pcba_target.scene": _sentinel("__SCENE__"),
    "day0_image.output": _sentinel("__OUTPUT__"),
    "day0_crop.output.dir": _sentinel("__OUTPUT__"),
    "defect_image.output": _sentinel("__OUTPUT__"),
    "usd2roi_nvpcb.scene": _sentinel("__SCENE__"),
    "usd2roi_nvpcb.real_image": _sentinel("__REAL_IMAGE__"),
    "usd2roi_nvpcb.output.dir": _sentinel("__OUTPUT__"),
    "day0_crop.crop.source": _NAME,
    "day0_crop.crop.classes": {"type": "array", "minItems": 1, "items": _NAME},
    "usd2roi_nvpcb.crop.classes": {"type": "array", "minItems": 1, "items": _NAME},
    "day0_crop.crop.class_dirs": {
        "type": "object",
        "minProperties": 1,
        "propertyNames": {"pattern": TAXON},
        "additionalProperties": _NAME,
    },
    "usd2roi_nvpcb.crop.class_dirs": {
        "type": "object",
        "minProperties": 1,
        "propertyNames": {"pattern": TAXON},
        "additionalProperties": _NAME,
    },
    "defect_image.component_types": {
        "type": "array",
        "minItems": 1,
        "items": {"type": "string", "pattern": r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,127}$"},
    },
    "day0_image.semantics[].labels.class": _NAME,
    "usd2roi_nvpcb.semantics[].labels.class": _NAME,
    "day0_image.max_image_count": {"type": ["string", "integer"]},
    "day0_crop.crop.max_emit": {"type": ["integer", "null"], "minimum": 1},
    "day0_crop.crop.max_area": {"type": ["integer", "null"], "minimum": 1},
    "usd2roi_nvpcb.crop.max_area": {"type": ["integer", "null"], "minimum": 1},
    "usd2roi_nvpcb.registration.min_mi": {"type": ["number", "null"]},
    "ag_config.checkpoint.save_iter": {"type": "integer", "minimum": 1},
    "ag_config.trainer.max_iter": {"type": "integer", "minimum": 1},
    "ag_config.trainer.validation_iter": {"type": "integer", "minimum": 1},
    "ag_config.trainer.logging_iter": {"type": "integer", "minimum": 1},
}
# Fields a cookbook may carry although the shipped files lack them.
COOKBOOK_EXTRA_FIELDS: dict[str, dict[str, Any]] = {
    "day0_image.horizontal_aperture": {"type": "number", "exclusiveMinimum": 0},
    "pcba_target.horizontal_aperture": {"type": "number", "exclusiveMinimum": 0},
    "defect_image.horizontal_aperture": {"type": "number", "exclusiveMinimum": 0},
}


def _type_of(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _merge_types(a: set[str]) -> list[str] | str:
    if "number" in a:
        a.discard("integer")
    types = sorted(a)
    return types[0] if len(types) == 1 else types


def infer_schema(samples: list[Any], path: str = "") -> dict[str, Any]:
    """A strict schema that every sample satisfies: same keys (no others), same types."""
    if path in COOKBOOK_FIELD_OVERRIDES:
        return dict(COOKBOOK_FIELD_OVERRIDES[path])
    types = {_type_of(s) for s in samples}
    schema: dict[str, Any] = {"type": _merge_types(set(types))}
    dicts = [s for s in samples if isinstance(s, dict)]
    if dicts:
        keys = list(dict.fromkeys(k for d in dicts for k in d))
        schema["properties"] = {
            k: infer_schema([d[k] for d in dicts if k in d], f"{path}.{k}".lstrip(".")) for k in keys
        }
        for extra, fragment in COOKBOOK_EXTRA_FIELDS.items():
            parent, _, leaf = extra.rpartition(".")
            if parent == path:
                schema["properties"][leaf] = fragment
        schema["additionalProperties"] = False
    lists = [s for s in samples if isinstance(s, list)]
    items = [i for s in lists for i in s]
    if items:
        schema["items"] = infer_schema(items, f"{path}[]")
    return schema


def _load(group: str, option: str, *, resolve: bool = False) -> dict[str, Any]:
    from omegaconf import OmegaConf

    conf = OmegaConf.load(CONF_DIR / group / f"{option}.yaml")
    return OmegaConf.to_container(conf, resolve=resolve)  # type: ignore[return-value]


def variant_knob_sets() -> dict[str, list[str]]:
    """Knob names of each flow variant, as Hydra composes them (compiler.flows.variant_knob_sets)."""
    from compiler.flows import variant_knob_sets as knob_sets

    return knob_sets()


# A board key names files and the compile key: letters, digits, `_` and `-`, not starting with `_`.
BOARD_KEY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]*$"


def build_schema() -> dict[str, Any]:
    from compiler.options import load_option

    flows = group_options("flow")
    # A use case file interpolates only itself (`anomaly_types: ${usecase.anomaly_types}`): resolved, as composed.
    usecases = [_load("usecase", u, resolve=True) for u in group_options("usecase")]
    # A board extends its base (`defaults: [_pcba, _self_]`): infer from the composed boards.
    boards = [load_option("board", b) for b in group_options("board")]
    variants = variant_knob_sets()
    cookbook_samples: dict[str, list[Any]] = {}
    for source in usecases + boards:
        for name, value in (source.get("cookbooks") or {}).items():
            cookbook_samples.setdefault(name, []).append(value)
    return {
        "$schema": DRAFT,
        "$id": "https://github.com/dig/dig/compiler/schemas/config.schema.json",
        "title": "dig: composed configuration of one DIG workflow compile",
        "description": "Generated by `python -m compiler.schema` from conf/ and compiler/knobs.py; do not edit.",
        "type": "object",
        "additionalProperties": False,
        "required": [
            *TOP_LEVEL_SCHEMAS,
            "flow",
            "usecase",
            "board",
            "endpoint",
            "preset",
            "knobs",
            "cookbooks",
        ],
        "properties": {
            **TOP_LEVEL_SCHEMAS,
            "flow": _flow_schema(flows, sorted(variants)),
            "usecase": _usecase_schema([u["usecase"] for u in usecases]),
            "board": _board_schema([b["board"] for b in boards], [u["usecase"]["key"] for u in usecases]),
            "endpoint": _endpoint_schema(group_options("endpoint")),
            "preset": {"enum": group_options("knobs")},
            "knobs": {"type": "object"},
            "cookbooks": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    name: {"$ref": f"#/$defs/cookbook_{name}"} for name in sorted(cookbook_samples)
                },
            },
        },
        "allOf": [
            {
                "if": {"properties": {"flow": {"properties": {"variant": {"const": v}}}}},
                "then": {"properties": {"knobs": {"$ref": f"#/$defs/knobs_{v}"}}},
            }
            for v in sorted(variants)
        ],
        "$defs": _defs(variants, cookbook_samples),
    }


def _endpoint_schema(options: list[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["key", "url"],
        "properties": {
            "key": {"enum": options},
            "url": {
                "type": ["string", "null"],
                "maxLength": 2048,
                # host and port are judged by compiler.values (urllib.parse), which a regex cannot do
                "pattern": r"^https?://[^\s/?#]+(/[A-Za-z0-9._~%-]+)*/?$",
            },
        },
    }


def _defs(variants: dict[str, list[str]], cookbook_samples: dict[str, list[Any]]) -> dict[str, Any]:
    """One fragment per knob, one object per variant's knob set, one inferred schema per cookbook."""
    defs: dict[str, Any] = {
        f"knob_{k}": {"description": KNOB_MEANINGS[k], **v} if k in KNOB_MEANINGS else v
        for k, v in sorted(KNOB_SCHEMAS.items())
    }
    for variant, knobs in sorted(variants.items()):
        missing = [k for k in knobs if k not in KNOB_SCHEMAS]
        if missing:
            raise ValueError(f"knobs without a type in compiler/knobs.py: {missing}")
        defs[f"knobs_{variant}"] = {
            "type": "object",
            "additionalProperties": False,
            "required": knobs,
            "properties": {k: {"$ref": f"#/$defs/knob_{k}"} for k in knobs},
        }
    for name, samples in sorted(cookbook_samples.items()):
        defs[f"cookbook_{name}"] = infer_schema(samples, name)
    return defs


def _flow_schema(flows: list[str], variants: list[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["key", "variant", "title", "uses_board", "usecase_free"],
        "properties": {
            "key": {"enum": sorted(flows)},
            "variant": {"enum": variants},
            "title": {"type": "string"},
            "uses_board": {"type": "boolean"},
            "usecase_free": {"type": "boolean"},
        },
    }


def _usecase_schema(usecases: list[dict[str, Any]]) -> dict[str, Any]:
    schema = infer_schema(usecases)
    schema["properties"]["key"] = {"enum": [u["key"] for u in usecases]}
    return schema


def _board_schema(boards: list[dict[str, Any]], usecase_keys: list[str]) -> dict[str, Any]:
    schema = infer_schema(boards)
    props = schema["properties"]
    # Not an enum: a user's own board (from a config search-path dir) has its own key.
    props["key"] = {"type": "string", "pattern": BOARD_KEY_PATTERN, "maxLength": 64}
    props["usecase"] = {"enum": usecase_keys}
    props["structural_render_patches"] = {"type": ["integer", "null"]}
    props["structural_yield"] = {
        "type": ["array", "null"],
        "items": {"type": "array", "minItems": 2, "maxItems": 2, "items": {"type": "integer"}},
    }
    props["real_image_filename"] = {"type": ["string", "null"]}
    return schema


def render_schema() -> str:
    return json.dumps(build_schema(), indent=2, ensure_ascii=False, allow_nan=False) + "\n"


@lru_cache(maxsize=1)
def load_schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return schema


def main(argv: list[str] | None = None) -> int:
    """Export the schema (the one command that writes it) or, with --check, only compare."""
    import argparse

    ap = argparse.ArgumentParser(
        prog="python -m compiler.schema",
        description=f"Export the composed-config JSON Schema to {SCHEMA_PATH}.",
    )
    ap.add_argument("--check", action="store_true", help="exit 1 if the file is stale; write nothing")
    args = ap.parse_args(sys.argv[1:] if argv is None else argv)  # --help and unknown flags exit here
    text = render_schema()
    if args.check:
        if not SCHEMA_PATH.is_file() or SCHEMA_PATH.read_text(encoding="utf-8") != text:
            print(f"{SCHEMA_PATH} is stale: run `python -m compiler.schema`", file=sys.stderr)
            return 1
        return 0
    SCHEMA_PATH.parent.mkdir(parents=True, exist_ok=True)
    tmp = SCHEMA_PATH.with_suffix(".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(SCHEMA_PATH)
    print(SCHEMA_PATH)
    return 0


if __name__ == "__main__":
    sys.exit(main())
