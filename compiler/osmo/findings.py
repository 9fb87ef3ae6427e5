"""Findings, bounded YAML loading, and the facts the checks share (OSMO's patterns and units; spec/osmo_rules.md)."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from compiler.osmo.limits import LimitExceeded, expanded_nodes

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "schemas" / "osmo_workflow.schema.json"

# utils/job/common.py NAMEREGEX: workflow, group and task names (the knob types use it; the OSMO schema
# states the same pattern, a test keeps the two equal).
NAME_RE = re.compile(r"^[a-zA-Z]([a-zA-Z0-9_-]*[a-zA-Z0-9])?$")


MAX_NAME_LENGTH = 64  # WorkflowInfo.max_name_length default


MAX_TASKS_CODE_DEFAULT = 20


MAX_TASKS_CHART = 100


TOP_LEVEL_KEYS = ("version", "workflow", "default-values")
# OSMO protects exactly these tokens from Jinja (no spaces allowed inside the braces).


OSMO_TOKEN_RE = re.compile(r"\{\{(uuid|workflow_id|output|input:[^}]+|host:[^}]+)\}\}")


OSMO_TOKEN_NAMES = ("output", "uuid", "workflow_id")


SIMPLE_VAR_RE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


JINJA_MARK_RE = re.compile(r"\{[{%#]")


TOP_KEY_RE = re.compile(r"^([^\s#{}\[\]:'\"-][^:\s]*|-[^\s:]+)\s*:(\s|$)")


TEMPLATED_MARKERS = ("{%", "{{", "{#", "default-values")


UNITS = ("T", "Ti", "TiB", "G", "Gi", "GiB", "M", "Mi", "MiB", "K", "Ki", "KiB", "B", "m")


QUANTITY_RE = re.compile(r"^(\d+(\.\d+)?)([a-zA-Z]*)$")


EXIT_CODES_RE = re.compile(r"^(\d+(-\d+)?)+(,\d+(-\d+)?)*$")


EXIT_ACTIONS = ("COMPLETE", "FAIL", "RESCHEDULE")


URL_SCHEMES = {"s3": 1, "gs": 1, "swift": 3, "tos": 2, "azure": 2}  # scheme -> minimum components


LABEL_PART_RE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")


LABEL_PREFIX_RE = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


K8S_SECRET_LIMIT = 1024 * 1024

# Docker reference grammar (distribution/reference), compiled once.


_DOMAIN_COMP = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"


_DOMAIN = rf"(?:{_DOMAIN_COMP}(?:\.{_DOMAIN_COMP})*(?::[0-9]+)?|\[[a-fA-F0-9:]+\](?::[0-9]+)?)"


_PATH_COMP = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"


_NAME = rf"(?:{_DOMAIN}/)?{_PATH_COMP}(?:/{_PATH_COMP})*"


_TAG = r"[\w][\w.-]{0,127}"


_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"


DOCKER_REF_RE = re.compile(rf"^{_NAME}(?::{_TAG})?(?:@{_DIGEST})?$")


@dataclass(frozen=True)
class Finding:
    """One validation result: severity is "error", "warning" or "note"; path is a dotted key path."""

    severity: str
    path: str
    message: str
    line: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Collector:
    def __init__(self) -> None:
        self.findings: list[Finding] = []

    def error(self, path: str, message: str, line: int | None = None) -> None:
        self.findings.append(Finding("error", path, message, line))

    def warning(self, path: str, message: str, line: int | None = None) -> None:
        self.findings.append(Finding("warning", path, message, line))

    def note(self, path: str, message: str, line: int | None = None) -> None:
        self.findings.append(Finding("note", path, message, line))


def _seq(value: Any) -> list[Any]:
    """A list field as a list, whatever was given (the schema reports a wrong type; rules skip it)."""
    return value if isinstance(value, list) else []


def _dotted(path: list[Any]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


@dataclass
class _Section:
    key: str
    line: int  # 1-based line of the key
    text: str  # the section's text including the key line


class _TooLarge(yaml.YAMLError):
    """A document over a bound (alias expansion); reported as a refusal, not a parse error."""


# An alias needs an anchor (`&name` after a space, `[`, `{`, `,`, `:` or `-`); no anchor, nothing to expand
# (a false match only costs the walk: `&&` and `2>&1` do not match).
_ANCHOR_RE = re.compile(r"(?:^|[\s\[{,:-])&[A-Za-z0-9_-]")


def _load_yaml(text: str) -> Any:
    doc = yaml.load(text, Loader=yaml.CSafeLoader)  # aliases become shared objects: loading is cheap
    if isinstance(doc, dict | list) and _ANCHOR_RE.search(text):
        try:
            expanded_nodes(doc)
        except LimitExceeded as exc:
            raise _TooLarge(str(exc)) from None
    return doc


def _yaml_error(exc: yaml.YAMLError, line_offset: int = 0) -> tuple[str, int | None]:
    if isinstance(exc, _TooLarge):
        return f"YAML refused: {exc}", None
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    if mark is None:
        return f"YAML does not parse: {problem}", None
    line = mark.line + 1 + line_offset
    return f"YAML does not parse: {problem} (line {line}, column {mark.column + 1})", line
