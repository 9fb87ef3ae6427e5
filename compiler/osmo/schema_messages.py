"""OSMO's workflow JSON Schema and its errors as messages a person can act on."""

from __future__ import annotations

import functools
import json
from typing import Any

import jsonschema

from compiler.osmo.findings import SCHEMA_PATH, _Collector, _dotted


def _inline_refs(node: Any, defs: dict[str, Any]) -> Any:
    # The schema has no recursion, and $ref resolution is jsonschema's main per-call cost.
    if isinstance(node, dict):
        if "$ref" in node and node["$ref"].startswith("#/$defs/"):
            target = _inline_refs(defs[node["$ref"].removeprefix("#/$defs/")], defs)
            rest = {k: _inline_refs(v, defs) for k, v in node.items() if k != "$ref"}
            return {**target, **rest}
        return {k: _inline_refs(v, defs) for k, v in node.items() if k != "$defs"}
    if isinstance(node, list):
        return [_inline_refs(v, defs) for v in node]
    return node


@functools.lru_cache(maxsize=1)
def schema() -> dict[str, Any]:
    """The JSON Schema (Draft 2020-12) for a rendered OSMO workflow, its $refs inlined."""
    raw = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    inlined: dict[str, Any] = _inline_refs(raw, raw.get("$defs", {}))
    inlined["$schema"] = raw["$schema"]
    return inlined


@functools.lru_cache(maxsize=1)
def _schema_validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(schema())


def _schema_path(error: jsonschema.ValidationError) -> str:
    return _dotted(list(error.absolute_path))


def _check_schema(doc: dict[str, Any], out: _Collector) -> None:
    validator = _schema_validator()
    for error in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path))):
        out.error(_schema_path(error), _schema_message(error))


def _short(value: Any) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _schema_message(error: jsonschema.ValidationError) -> str:
    validator = error.validator
    schema_node = error.schema if isinstance(error.schema, dict) else {}
    hint = schema_node.get("description")
    if validator == "additionalProperties":
        allowed = sorted(schema_node.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed)) if isinstance(error.instance, dict) else []
        keys = ", ".join(repr(k) for k in extra)
        return (
            f"unknown key {keys}; remove it or fix the spelling (OSMO rejects unknown keys); "
            f"allowed: {', '.join(allowed)}"
        )
    if validator == "required":
        missing = str(error.message).split("'")[1] if "'" in error.message else error.message
        return f"missing required key {missing!r}"
    if validator == "type":
        types = error.validator_value
        expected = " or ".join(types) if isinstance(types, list) else types
        return (
            f"wrong type; got {_short(error.instance)} ({type(error.instance).__name__}); allowed: {expected}"
        )
    if validator == "pattern":
        return f"invalid value; got {_short(error.instance)}; allowed: {hint or f'a match of {error.validator_value}'}"
    if validator == "minItems":
        return f"must not be empty; got {_short(error.instance)}; allowed: {hint or 'at least one item'}"
    if validator == "maxProperties" and isinstance(error.instance, dict):
        return f"too many entries ({len(error.instance)}); allowed: at most {error.validator_value}"
    if validator == "minLength":
        return "must not be empty"
    if validator == "enum" and isinstance(error.validator_value, list):
        choices = ", ".join(repr(v) for v in error.validator_value if v is not None)
        return f"invalid value; got {_short(error.instance)}; allowed: {choices}"
    if validator in ("oneOf", "anyOf"):
        best = jsonschema.exceptions.best_match(error.context) if error.context else None
        if hint:
            return f"invalid value; got {_short(error.instance)}; allowed: {hint}"
        if best is not None and validator == "oneOf" and isinstance(error.instance, dict):
            return _oneof_message(error.instance)
        return f"invalid value; got {_short(error.instance)}" + (
            f"; {best.message}" if best is not None else ""
        )
    return f"{error.message}" + (f"; allowed: {hint}" if hint else "")


def _oneof_message(instance: dict[str, Any]) -> str:
    keys = sorted(instance)
    return f"invalid entry with keys {keys}; allowed: {{task: <name>, regex?}} or {{url: <data URL>, regex?}}"
