"""The offline OSMO validator's old import path; the code lives in compiler.osmo (one job per module)."""

from __future__ import annotations

from compiler.osmo import (
    DOCKER_REF_RE,
    Finding,
    cast_set_value,
    has_errors,
    jinja_env,
    k8s_name,
    parse_sets,
    schema,
    validate_file,
    validate_text,
)

__all__ = [
    "DOCKER_REF_RE",
    "Finding",
    "cast_set_value",
    "has_errors",
    "jinja_env",
    "k8s_name",
    "parse_sets",
    "schema",
    "validate_file",
    "validate_text",
]
