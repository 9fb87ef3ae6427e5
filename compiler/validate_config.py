"""Validate a composed config: normalise types, check the JSON Schema, then the cross-field rules."""

from __future__ import annotations

import json
import math
from functools import lru_cache
from typing import Any

from compiler.errors import Diagnostic, DigError, did_you_mean
from compiler.knobs import failure_mode, normalise_knobs, pattern_hint
from compiler.rules import check_rules
from compiler.schema import load_schema


@lru_cache(maxsize=1)
def _validator() -> Any:
    from jsonschema import Draft202012Validator, validators

    # Integers are integers (an integral float such as 15.0 is refused, never truncated: the pods'
    # loaders refuse it too) and numbers are finite (NaN/Infinity are not JSON).
    checker = Draft202012Validator.TYPE_CHECKER.redefine_many(
        {
            "integer": lambda _c, v: isinstance(v, int) and not isinstance(v, bool),
            "number": lambda _c, v: (
                isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            ),
        }
    )
    strict = validators.extend(Draft202012Validator, type_checker=checker)  # type: ignore[no-untyped-call]
    # The schema itself is checked by a test (check_schema costs ~1 s here), not on every compile.
    return strict(load_schema())


def non_finite_diagnostics(config: dict[str, Any]) -> list[Diagnostic]:
    """NaN and Infinity anywhere a user can set a value: refused (spec.json must be standard JSON)."""
    out: list[Diagnostic] = []

    def walk(node: Any, path: str) -> None:
        if isinstance(node, float) and not math.isfinite(node):
            out.append(
                Diagnostic(
                    "error",
                    path,
                    "is not a finite number (NaN and Infinity are refused: the "
                    "compiled spec.json must be standard JSON)",
                    node,
                    "a finite number",
                )
            )
        elif isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{path}.{key}")
        elif isinstance(node, list):
            for index, value in enumerate(node):
                walk(value, f"{path}[{index}]")

    for root in ("knobs", "cookbooks", "endpoint"):
        walk(config.get(root), root)
    return out


def _key(path: Any) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(config)"


def _schema_at(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if ref and ref.startswith("#/$defs/"):
        found: dict[str, Any] = root["$defs"][ref.split("/")[-1]]
        return found
    return schema


def _allowed(schema: dict[str, Any]) -> str | None:
    if "description" in schema and ("anyOf" in schema or "oneOf" in schema):
        return str(schema["description"])
    if "enum" in schema:
        return ", ".join(map(str, schema["enum"]))
    if "const" in schema:
        return repr(schema["const"])
    if "pattern" in schema:
        return pattern_hint(schema["pattern"]) or f"a string matching {schema['pattern']}"
    parts = []
    if "type" in schema:
        parts.append(f"type {schema['type']}")
    for bound in ("minimum", "maximum", "minLength", "maxLength", "minItems", "maxItems"):
        if bound in schema:
            parts.append(f"{bound} {schema[bound]}")
    return ", ".join(parts) or None


_VALID_COOKBOOKS: set[str] = set()  # canonical JSON of cookbook sets already found valid


def schema_diagnostics(config: dict[str, Any]) -> list[Diagnostic]:
    root = load_schema()
    out: list[Diagnostic] = []
    # Cookbooks are large and identical across most sweep variants: validate each distinct set once.
    books_key = json.dumps(config.get("cookbooks"), sort_keys=True, default=str)
    instance = config
    if books_key in _VALID_COOKBOOKS:
        instance = {**config, "cookbooks": {}}
    errors = list(_validator().iter_errors(instance))
    if not errors and instance is config:
        _VALID_COOKBOOKS.add(books_key)
    for err in sorted(errors, key=lambda e: (list(map(str, e.absolute_path)), e.message)):
        if err.validator in ("allOf", "if", "then"):
            continue
        key = _key(err.absolute_path)
        schema = _schema_at(err.schema, root)
        if err.validator == "additionalProperties":
            known = list(schema.get("properties", {}))
            extras = [k for k in err.instance if k not in known] if isinstance(err.instance, dict) else []
            for extra in extras:
                out.append(
                    Diagnostic(
                        "error",
                        f"{key}.{extra}",
                        f"unknown key{did_you_mean(extra, known)}",
                        extra,
                        ", ".join(known),
                        "A11",
                    )
                )
            continue
        value = err.instance
        if err.validator == "pattern" and schema.get("pattern", "").endswith(
            "(Ti|TiB|T|Gi|GiB|G|Mi|MiB|M|Ki|KiB|K|B)$"
        ):
            message = "needs a unit (OSMO reads a bare number as bytes)"
        elif err.validator == "type" and key.endswith(("memory", "storage", "memory_large", "storage_large")):
            message = f"needs a unit: write {value}Gi, not {value}"
        elif (
            err.validator == "type"
            and isinstance(value, float)
            and value.is_integer()
            and "integer" in str(schema.get("type"))
        ):
            message = (
                f"is an integral float; integers are integers here (write {int(value)}): the pod's "
                "option loader refuses floats, so dig refuses them at compile time"
            )
        elif err.validator == "const" and "description" in schema:
            message = f"is {schema['description']}: leave it as shipped"
        elif err.validator in ("anyOf", "oneOf"):
            message = "is not one of the allowed forms"
        else:
            message = err.message if len(err.message) < 160 else err.message[:157] + "..."
        out.append(
            Diagnostic("error", key, message, value, _allowed(schema), failure_mode(key, err.validator))
        )
    return out


def validate_config(
    config: dict[str, Any],
    *,
    explicit: set[str] | frozenset[str] = frozenset(),
    choices: dict[str, str] | None = None,
    early: list[Diagnostic] | None = None,
) -> tuple[dict[str, Any], list[Diagnostic]]:
    """Return the normalised config and its warnings/notices; raise DigError on any error.

    `explicit` names the knobs the user set on the command line: the sizing rule derives cpu and
    memory only for knobs that were not set there. `early` are the composition's own findings
    (notices, warnings), so that strict=true applies to them too.
    """
    config = dict(config)
    config["knobs"] = normalise_knobs(config["knobs"])
    errors = non_finite_diagnostics(config) or schema_diagnostics(config)
    if errors:
        raise DigError(errors, choices=choices)
    diagnostics = list(early or []) + check_rules(config, explicit=set(explicit))
    errors = refusals(diagnostics, strict=bool(config.get("strict")))
    if errors:
        raise DigError(errors, choices=choices)
    return config, [d for d in diagnostics if d.severity != "error"]


def refusals(diagnostics: list[Diagnostic], *, strict: bool) -> list[Diagnostic]:
    """The diagnostics that stop a compile: its errors, and with strict=true its warnings as errors."""
    errors = [d for d in diagnostics if d.severity == "error"]
    if strict:
        errors += [
            Diagnostic(
                "error",
                d.key,
                f"{d.message} (strict=true turns warnings into errors)",
                d.got,
                d.allowed,
                d.rule,
            )
            for d in diagnostics
            if d.severity == "warning"
        ]
    return errors
