"""One document end to end: the top-level split, YAML loading, render, schema, rules, scan."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from compiler.osmo.findings import (
    JINJA_MARK_RE,
    TEMPLATED_MARKERS,
    TOP_KEY_RE,
    TOP_LEVEL_KEYS,
    Finding,
    _Collector,
    _dotted,
    _load_yaml,
    _Section,
    _yaml_error,
)
from compiler.osmo.render import Source, _render
from compiler.osmo.rules import _check_rules, _check_version
from compiler.osmo.schema_messages import _check_schema
from compiler.osmo.second_render import _inline_localpaths, _scan_jinja, _scan_string


def _split_sections(text: str, out: _Collector) -> dict[str, _Section] | None:
    sections: dict[str, _Section] = {}
    spans: dict[str, list[int]] = {}  # key -> [first line index, end index); joined once (no O(n^2) +=)
    current: str | None = None
    lines = text.splitlines(keepends=True)
    for index, raw in enumerate(lines, start=1):
        # Only column-0 lines can start a section; skip the rest cheaply (big block scalars).
        if raw[:1].isspace() or raw[:1] in ("#", ""):
            continue
        stripped = raw.rstrip("\r\n")
        if stripped in ("---", "...") and current is None:
            continue
        match = TOP_KEY_RE.match(stripped)
        if not match or stripped.startswith(("{%", "{{", "{#")):
            continue
        key = match.group(1).strip("'\"")
        if current is not None:
            spans[current][1] = index - 1
        if key not in TOP_LEVEL_KEYS:
            out.error(
                key,
                f"top-level key {key!r} is not allowed; remove it or move it under `workflow:` "
                f"(allowed: {', '.join(TOP_LEVEL_KEYS)})",
                index,
            )
            current = None
            continue
        if key in sections:
            out.error(
                key,
                f"top-level key {key!r} appears twice (lines {sections[key].line} and {index}); keep one",
                index,
            )
            current = None
            continue
        current = key
        sections[key] = _Section(key, index, "")
        spans[key] = [index - 1, len(lines)]
    if current is not None:
        spans[current][1] = len(lines)
    for key, (start, end) in spans.items():
        sections[key].text = "".join(lines[start:end])
    if "workflow" not in sections:
        out.error(
            "workflow",
            "missing top-level key `workflow:`; an OSMO spec needs `workflow:` "
            f"(allowed top-level keys: {', '.join(TOP_LEVEL_KEYS)})",
        )
        return None
    return sections


def _make_locator(section: _Section, doc: Any) -> Any:
    """Map a file line to (key path, description) using the raw YAML's node marks, if it parses."""
    # Blank out Jinja so the raw template parses as YAML with its lines and columns unchanged.
    sanitized = re.sub(r"\{\{.*?\}\}", lambda m: "x" * len(m.group(0)), section.text)
    sanitized = re.sub(r"(?m)^[ \t]*\{%.*%\}[ \t]*$", "", sanitized)
    try:
        root = yaml.compose(sanitized, Loader=yaml.CSafeLoader)
        if not isinstance(doc, dict):
            doc = _load_yaml(sanitized)
    except yaml.YAMLError:
        return None
    if root is None:
        return None

    def locate(file_line: int) -> tuple[str, str] | None:
        target = file_line - section.line  # 0-based line within the section text
        best: tuple[list[Any], Any] | None = None
        stack: list[tuple[Any, list[Any]]] = [(root, [])]
        while stack:
            node, path = stack.pop()
            if not (node.start_mark.line <= target <= node.end_mark.line):
                continue
            if isinstance(node, yaml.ScalarNode):
                best = (path, node)
            elif isinstance(node, yaml.MappingNode):
                for key, value in node.value:
                    stack.append((value, [*path, key.value]))
            elif isinstance(node, yaml.SequenceNode):
                for index, item in enumerate(node.value):
                    stack.append((item, [*path, index]))
        if best is None:
            return None
        path, node = best
        dotted = _dotted(path)
        desc = _describe(doc, path)
        if node.style in ("|", ">"):
            desc += f"line {target - node.start_mark.line} of the text, "
        return dotted, desc

    return locate


def _describe(doc: Any, path: list[Any]) -> str:
    """'task X, file /p, ' for a path into a task or its files."""
    parts: list[str] = []
    node = doc
    for index, part in enumerate(path):
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            break
        if isinstance(node, dict) and index >= 1 and path[index - 1] == "tasks" and "name" in node:
            parts.append(f"task {node['name']!r}")
        if isinstance(node, dict) and index >= 1 and path[index - 1] == "files" and "path" in node:
            parts.append(f"file {node['path']!r}")
    return "".join(p + ", " for p in parts)


def validate_text(
    text: str,
    *,
    sets: Mapping[str, Any] | None = None,
    allow_unset: Iterable[str] = frozenset({"name"}),
    source: str = "<string>",
    base_dir: str | os.PathLike[str] | None = None,
) -> list[Finding]:
    """Validate one OSMO workflow text; ``sets`` are values as OSMO has them after casting
    (see :func:`parse_sets`); ``base_dir`` is the directory ``localpath`` entries are relative to
    (None: localpath files are not read and a note says so). ``source`` names the text for callers;
    findings carry key paths and lines, not it."""
    out = _Collector()
    sets = dict(sets or {})
    allowed = set(allow_unset)
    sections = _split_sections(text, out)
    if sections is None:
        return out.findings
    wf = sections["workflow"]
    defaults = _default_values(sections.get("default-values"), out)
    if defaults is None:
        return out.findings
    raw_doc: Any = None
    raw_error: tuple[str, int | None] | None = None
    try:
        raw_doc = _load_yaml(wf.text)
    except yaml.YAMLError as exc:
        raw_error = _yaml_error(exc, wf.line - 1)
    if "version" in sections:
        _check_version(sections["version"], any(marker in text for marker in TEMPLATED_MARKERS), out)
    # Documents without default-values (compiled output, already-rendered specs) go to OSMO's
    # renders almost as they are, so their raw strings are what the second render sees.
    scan_raw = "default-values" not in sections and isinstance(raw_doc, dict)
    lexical_errors = 0
    if scan_raw:
        before = len(out.findings)
        _scan_jinja(raw_doc, [], allowed | sets.keys(), out)
        lexical_errors = sum(1 for f in out.findings[before:] if f.severity == "error")
    if any(marker in text for marker in TEMPLATED_MARKERS):
        doc, stop = _rendered(wf, raw_doc, {**defaults, **sets}, allowed, lexical_errors, out)
        if stop is not None:
            return stop
    elif raw_error:
        out.error("workflow", raw_error[0], raw_error[1])
        return out.findings
    else:
        doc = raw_doc
    return _check_document(doc, base_dir, allowed | sets.keys(), scan_raw, out)


def _default_values(section: _Section | None, out: _Collector) -> dict[str, Any] | None:
    """The `default-values` mapping ({} without one); None after an error finding."""
    if section is None:
        return {}
    try:
        loaded = _load_yaml(section.text)
    except yaml.YAMLError as exc:
        message, line = _yaml_error(exc, section.line - 1)
        out.error("default-values", message, line)
        return None
    value = (loaded or {}).get("default-values")
    if value is None:
        return {}
    if not isinstance(value, dict):
        out.error(
            "default-values",
            f"`default-values` must be a mapping of knob: value; got {type(value).__name__}",
            section.line,
        )
        return None
    return value


def _rendered(
    wf: _Section,
    raw_doc: Any,
    values: dict[str, Any],
    allowed: set[str],
    lexical_errors: int,
    out: _Collector,
) -> tuple[Any, list[Finding] | None]:
    """Render the workflow section like OSMO and load it: (document, None), or (None, the findings to
    return) when it does not render or the rendered text is not YAML."""
    scratch = _Collector()

    def locate(file_line: int) -> tuple[str, str] | None:
        # Built only on a syntax error: composing the raw YAML costs as much as the render.
        locator = _make_locator(wf, raw_doc)
        return locator(file_line) if locator else None

    rendered = _render(Source(wf.text, wf.line - 1, locate), values, allowed, scratch)
    # With lexical errors the scan already named each offending marker with its place; keep
    # render notes, and a limit that was hit.
    out.findings.extend(
        f
        for f in scratch.findings
        if not lexical_errors or f.severity != "error" or "render stopped" in f.message
    )
    if rendered is None:
        _check_unrendered(raw_doc, out)
        return None, _dedupe(out.findings)
    try:
        return _load_yaml(rendered), None
    except yaml.YAMLError as exc:
        message, _ = _yaml_error(exc)
        out.error("workflow", f"the rendered workflow is not valid YAML: {message}")
        return None, out.findings


def _check_document(
    doc: Any, base_dir: str | os.PathLike[str] | None, allowed: set[str], scanned_raw: bool, out: _Collector
) -> list[Finding]:
    """Schema, rules and the second-render scan over the loaded (rendered) document; ``allowed``: the
    variables set at submit time; ``scanned_raw``: the raw text was scanned already (then only the
    inlined localpath files are)."""
    if not isinstance(doc, dict) or "workflow" not in doc:
        out.error("workflow", "`workflow:` must be a mapping with name and groups or tasks")
        return out.findings
    inlined = _inline_localpaths(doc["workflow"], base_dir, out) if isinstance(doc["workflow"], dict) else []
    _check_schema({"workflow": doc["workflow"]}, out)
    if isinstance(doc["workflow"], dict):
        _check_rules(doc["workflow"], out)
        if not scanned_raw:
            _scan_jinja(doc, [], allowed, out)
        else:
            for cpath, task, entry in inlined:
                _scan_string(entry.get("contents"), cpath, allowed, out, task, entry)
    return _dedupe(out.findings)


_PATH_PART_RE = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def _plain_at(doc: Any, path: str) -> bool:
    """True when `path` resolves in `doc` to a value with no Jinja in it (so rendering cannot change it)."""
    node = doc
    for name, index in _PATH_PART_RE.findall(path):
        try:
            node = node[int(index)] if index else node[name]
        except (KeyError, IndexError, TypeError):
            return False
    return not JINJA_MARK_RE.search(node if isinstance(node, str) else json.dumps(node, default=str))


def _check_unrendered(raw_doc: Any, out: _Collector) -> None:
    """The render failed: still report what the rules find on values no rendering could change."""
    if not isinstance(raw_doc, dict) or not isinstance(raw_doc.get("workflow"), dict):
        return
    scratch = _Collector()
    _check_schema({"workflow": raw_doc["workflow"]}, scratch)
    _check_rules(raw_doc["workflow"], scratch)
    for f in scratch.findings:
        if f.severity != "note" and _plain_at(raw_doc, f.path):
            out.findings.append(
                Finding(f.severity, f.path, f"{f.message} (found in the unrendered text)", f.line)
            )


def validate_file(
    path: str | os.PathLike[str],
    *,
    sets: Mapping[str, Any] | None = None,
    allow_unset: Iterable[str] = frozenset({"name"}),
) -> list[Finding]:
    """Validate a workflow file; ``localpath`` entries resolve against its directory as typed.

    Raises OSError when the file cannot be read (a usage error for the CLI)."""
    data = Path(path).read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return [Finding("error", "", f"the file is not UTF-8 text: {exc}")]
    return validate_text(
        text,
        sets=sets,
        allow_unset=allow_unset,
        source=str(path),
        base_dir=os.path.dirname(os.fspath(path)) or ".",
    )


def has_errors(findings: Iterable[Finding]) -> bool:
    """True when any finding is an error."""
    return any(f.severity == "error" for f in findings)


def _dedupe(findings: list[Finding]) -> list[Finding]:
    seen: set[Finding] = set()
    out = []
    for f in findings:
        if f not in seen:
            seen.add(f)
            out.append(f)
    return out
