"""Offline OSMO workflow validator: render like OSMO, then check its schema and submit rules.

How a document is checked (facts from /work/shared/spec/osmo_rules.md):

1. Top level split on column-0 keys like OSMO's ``parse_workflow_spec``: only ``version``,
   ``workflow`` and ``default-values``, no duplicates, ``workflow`` required.
2. A spec is templated when its text holds ``{{``, ``{%``, ``{#`` or ``default-values``. Only the
   ``workflow:`` section is rendered (``version`` and ``default-values`` are dropped), with
   ``default-values`` then ``sets`` (see :func:`parse_sets` for OSMO's ``--set`` casting) in a
   sandboxed Jinja environment with ``StrictUndefined``. OSMO's own tokens (``{{output}}``,
   ``{{input:N}}``, ``{{input:task}}``, ``{{workflow_id}}``, ``{{uuid}}``, ``{{host:task}}``, no
   spaces) are swapped for variables whose value is the token, so they come back verbatim.
   Variables in ``allow_unset`` (default ``{"name"}``: the run name the compiler leaves for
   ``osmo workflow submit --set name=...``) render as their own name and yield a note.
3. ``localpath`` file entries are inlined the way the CLI does (relative to the workflow file).
4. The document is checked against ``schemas/osmo_workflow.schema.json`` (Draft 2020-12) and the
   Python rules below.
5. Second render: OSMO renders the posted text again with only ``--set`` values. Every string
   that reaches it (the rendered document, or the raw one when there are no ``default-values``,
   as in compiled output, plus inlined localpath files) may hold no ``{{``, ``{%`` or ``{#``
   except OSMO's tokens and ``{{ v }}`` for a variable ``v`` set at submit time.

Rules and how they are checked:

| rule (osmo_rules.md) | how |
|---|---|
| top-level keys, duplicates, ``workflow`` required | python (section split) |
| ``version: 2`` (int, numeric str, integral float; not bool) | python; warning only when templated |
| unknown keys in every model | schema (``additionalProperties: false``) |
| name pattern | schema; length <= 64 | python |
| task/group names unique after lower() and ``_``->``-`` | python |
| task not named ``osmo-ctrl`` | python |
| groups xor tasks, at least one; group has a task | python + schema (minItems) |
| exactly one lead per group of several tasks | python |
| number of tasks <= 100 (chart) error, > 20 (code default) warning | python |
| image, command required, command non-empty | schema |
| image parses as a docker reference | python |
| files: path+contents, unique, not under /osmo (but /osmo/data/output/) | schema + python |
| localpath: exists, UTF-8, not with contents | python (needs the file's directory) |
| inputs task/url, outputs url, regex compiles | schema + python |
| task input exists and is in an earlier group | python |
| data URL scheme and shape (s3, gs, swift>=3, tos>=2, azure>=2 parts) | python |
| checkpoint path/url/frequency | schema + python (url) |
| exitActions keys and code lists | python |
| downloadType only ``download`` | schema |
| cacheSize ``N%`` 0-100 or a quantity | python |
| kpis ``{index, path}`` | schema |
| credentials ``name -> str`` or ``name -> {ENV: key}`` | schema |
| resources: fields, int cpu/gpu, memory/storage units | schema; unit-less bytes | python warning |
| task.resource defined; ``default`` present | python |
| Helm default resource validations (cpu>0, memory>0, storage>0, gpu>=0) | python warning |
| volumeMounts ``src[:dst]`` form | python |
| all tasks use the same topology key set | python |
| labels: <= 16, key ``[prefix/]name``, name/value pattern | schema + python |
| timeouts: seconds or a duration | schema |
| Jinja StrictUndefined, syntax; render time <= 0.5 s | python (render); time is a warning |
| text survives the second render | python (lexical scan) |

Not checkable offline (need the OSMO service, its DB or the cluster):

| rule | needs |
|---|---|
| pool exists and is not in maintenance | service DB |
| resource without platform gets the pool's default_platform; platform exists in pool | pool config |
| pool/platform ``resource_validations`` against node ``K8_*`` values | pool config, cluster |
| privileged / hostNetwork allowed; volumeMount src in allowed/default mounts | platform config |
| topology keys exist in the pool's ``topology_keys`` | pool config |
| group GPUs <= pool GPU guarantee (NORMAL/HIGH priority) | pool config |
| ``wfid:task`` inputs exist and are finished | service DB |
| generic credential exists and holds every referenced key | service DB |
| registry accepts the image; digest pinning | registry |
| data credential for each bucket (unless ambient/disabled) | service DB |
| pool label policy (warn/enforce) | pool config |
| timeouts above the pool/workflow maximum are capped | pool config |
| ``max_num_tasks`` / ``max_name_length`` deployment overrides | service config (defaults used) |
| the sandbox's 100 MiB memory limit | service worker |
| Kubernetes ~1 MiB Secret limit per file | cluster (a warning is given above 1 MiB) |
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import jinja2
import jinja2.meta
import jinja2.sandbox
import jsonschema
import yaml

from compiler.osmo.limits import RENDER_LIMIT_S, LimitExceeded, RenderFailed, expanded_nodes, sandboxed_render

SCHEMA_PATH = Path(__file__).with_name("schemas") / "osmo_workflow.schema.json"

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


# ---------------------------------------------------------------------------------------------
# --set casting and the Jinja environment


def cast_set_value(value: str) -> int | float | str:
    """Cast one ``--set`` value like OSMO: int(), else float(), else the string (PEP 515 included)."""
    try:
        return int(value)
    except ValueError:
        pass
    try:
        return float(value)
    except ValueError:
        return value


def parse_sets(pairs: Iterable[str], *, cast: bool = True) -> dict[str, Any]:
    """Parse ``k=v`` strings (split at the first ``=``); ``cast=False`` mimics ``--set-string``."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--set expects key=value; got {pair!r}")
        out[key] = cast_set_value(value) if cast else value
    return out


@functools.lru_cache(maxsize=1)
def jinja_env() -> jinja2.sandbox.SandboxedEnvironment:
    """The one Jinja environment: sandboxed and StrictUndefined, as OSMO renders workflows."""
    return jinja2.sandbox.SandboxedEnvironment(undefined=jinja2.StrictUndefined)


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
def _schema_validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    inlined = _inline_refs(schema, schema.get("$defs", {}))
    inlined["$schema"] = schema["$schema"]
    return jsonschema.Draft202012Validator(inlined)


def schema() -> dict[str, Any]:
    """The JSON Schema (Draft 2020-12) for a rendered OSMO workflow."""
    return _schema_validator().schema


# ---------------------------------------------------------------------------------------------
# Top-level split (OSMO's parse_workflow_spec)


@dataclass
class _Section:
    key: str
    line: int  # 1-based line of the key
    text: str  # the section's text including the key line


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


class _TooLarge(yaml.YAMLError):
    """A document over a bound (alias expansion); reported as a refusal, not a parse error."""


def _load_yaml(text: str) -> Any:
    doc = yaml.load(text, Loader=yaml.CSafeLoader)  # aliases become shared objects: loading is cheap
    if isinstance(doc, dict | list) and ("*" in text):
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


# ---------------------------------------------------------------------------------------------
# Rendering (first pass, OSMO's load_template_with_variables)


def _protect_tokens(source: str) -> tuple[str, dict[str, str]]:
    tokens: dict[str, str] = {}

    def swap(match: re.Match[str]) -> str:
        var = "osmo_token_" + hashlib.sha1(match.group(0).encode()).hexdigest()[:16]
        tokens[var] = match.group(0)
        return "{{ " + var + " }}"

    return OSMO_TOKEN_RE.sub(swap, source), tokens


_UNDEFINED_RE = re.compile(r"^'([^']+)' is undefined$")


def _render(
    source: str,
    variables: dict[str, Any],
    allow_unset: set[str],
    line_offset: int,
    out: _Collector,
    locate: Any,
) -> str | None:
    """Render ``source`` like OSMO; on failure add findings and return None."""
    protected, tokens = _protect_tokens(source)
    if all(SIMPLE_VAR_RE.match(protected, m.start()) for m in JINJA_MARK_RE.finditer(protected)):
        # Only plain `{{ var }}` outputs: Jinja would print str(value), so substitute directly
        # (parsing and compiling a large workflow costs milliseconds).
        fast = _render_simple(protected, variables, tokens, allow_unset, out)
        if fast is not None:
            return fast
    try:
        ast, undeclared = _parse_template(protected)
    except jinja2.TemplateSyntaxError as exc:
        _report_syntax_error(exc, source, line_offset, out, locate)
        return None
    except (LimitExceeded, RenderFailed) as exc:
        out.error("workflow", f"Jinja render stopped: {exc}")
        return None
    context = dict(variables)
    context.update(tokens)
    for var in sorted((undeclared & allow_unset) - variables.keys()):
        context[var] = var  # a stand-in value: the real one comes with `--set` at submit time
        out.note(
            "workflow",
            f"{var} is set at submit time (`osmo workflow submit --set {var}=...`); "
            f"checked with the stand-in value {var!r}",
        )
    missing: list[str] = []
    # Render again after each undefined variable so that one run names all of them.
    for _ in range(50):
        try:
            rendered, elapsed = sandboxed_render(functools.partial(_compile_render, ast, dict(context)))
        except LimitExceeded as exc:
            out.error("workflow", f"Jinja render stopped: {exc}")
            return None
        except RenderFailed as exc:
            match = _UNDEFINED_RE.match(str(exc)) if exc.kind == "UndefinedError" else None
            if match and match.group(1) not in context:
                missing.append(match.group(1))
                context[match.group(1)] = match.group(1)
                continue
            jinja_kind = exc.kind.endswith(("UndefinedError", "SecurityError", "TemplateError",
                                            "TemplateRuntimeError", "TemplateAssertionError"))
            detail = str(exc) if jinja_kind else f"{exc.kind}: {exc}"
            out.error("workflow", f"Jinja substitution failure: {detail}")
            return None
        if elapsed > RENDER_LIMIT_S:
            out.error(
                "workflow",
                f"rendering took {elapsed:.2f} s of CPU; OSMO's sandbox stops a render after {RENDER_LIMIT_S} s",
            )
        break
    else:
        return None
    for var in missing:
        hint = ""
        if var in OSMO_TOKEN_NAMES or var in ("input", "host"):
            hint = f"; OSMO tokens are written without spaces: `{{{{{var}}}}}`"
        out.error(
            "workflow",
            f"Jinja substitution failure: '{var}' is undefined; add it to `default-values`, "
            f"pass `--set {var}=...`, or allow it with `--allow-unset {var}`{hint}",
        )
    return None if missing else rendered


@functools.lru_cache(maxsize=64)
def _parse_template(protected: str) -> tuple[Any, frozenset[str]]:
    """Parse once per text. Jinja's code generator folds constants (`{{ 'x' * 10**9 }}`), and
    finding the undeclared variables runs it, so that runs in the sandbox too."""
    ast = jinja_env().parse(protected)
    undeclared, _ = sandboxed_render(functools.partial(jinja2.meta.find_undeclared_variables, ast))
    return ast, frozenset(undeclared)


def _compile_render(ast: Any, context: dict[str, Any]) -> str:
    return jinja_env().from_string(ast).render(context)


def _render_simple(
    protected: str, variables: dict[str, Any], tokens: dict[str, str], allow_unset: set[str], out: _Collector
) -> str | None:
    """Render a text whose only Jinja is ``{{ var }}``; None when a variable is undefined (Jinja path)."""
    names = {m.group(1) for m in SIMPLE_VAR_RE.finditer(protected)}
    context = {**variables, **tokens}
    missing = names - context.keys() - allow_unset
    if missing:
        return None
    for var in sorted((names & allow_unset) - context.keys()):
        context[var] = var
        out.note(
            "workflow",
            f"{var} is set at submit time (`osmo workflow submit --set {var}=...`); "
            f"checked with the stand-in value {var!r}",
        )
    return SIMPLE_VAR_RE.sub(lambda m: _jinja_str(context[m.group(1)]), protected)


def _jinja_str(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


def _report_syntax_error(
    exc: jinja2.TemplateSyntaxError, source: str, line_offset: int, out: _Collector, locate: Any
) -> None:
    line_in_source = exc.lineno or 1
    file_line = line_in_source + line_offset
    lines = source.splitlines()
    column = None
    if 0 < line_in_source <= len(lines):
        text_line = lines[line_in_source - 1]
        for match in JINJA_MARK_RE.finditer(text_line):
            if not OSMO_TOKEN_RE.match(text_line, match.start()):
                column = match.start() + 1
                break
    where = ""
    path = "workflow"
    located = locate(file_line) if locate else None
    if located:
        path, where = located
    col = f", column {column}" if column else ""
    out.error(
        path,
        f"OSMO's Jinja render fails: {exc.message} ({where}file line {file_line}{col}); "
        "OSMO renders the workflow text, so write no `{{`, `{%` or `{#` outside Jinja "
        "(bash `${#arr[@]}` -> `$(printf '%s\\n' \"${arr[@]}\" | wc -l)`)",
        file_line,
    )


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


def _seq(value: Any) -> list[Any]:
    """A list field as a list, whatever was given (the schema reports a wrong type; rules skip it)."""
    return value if isinstance(value, list) else []


def _dotted(path: list[Any]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


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


# ---------------------------------------------------------------------------------------------
# Public API


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
    (None: localpath files are not read and a note says so)."""
    out = _Collector()
    sets = dict(sets or {})
    allowed = set(allow_unset)
    sections = _split_sections(text, out)
    if sections is None:
        return out.findings
    templated = any(marker in text for marker in TEMPLATED_MARKERS)
    wf = sections["workflow"]

    defaults: dict[str, Any] = {}
    if "default-values" in sections:
        try:
            loaded = _load_yaml(sections["default-values"].text)
        except yaml.YAMLError as exc:
            message, line = _yaml_error(exc, sections["default-values"].line - 1)
            out.error("default-values", message, line)
            return out.findings
        value = (loaded or {}).get("default-values")
        if value is None:
            value = {}
        if not isinstance(value, dict):
            out.error(
                "default-values",
                f"`default-values` must be a mapping of knob: value; got {type(value).__name__}",
                sections["default-values"].line,
            )
            return out.findings
        defaults = value

    raw_doc: Any = None
    raw_error: tuple[str, int | None] | None = None
    try:
        raw_doc = _load_yaml(wf.text)
    except yaml.YAMLError as exc:
        raw_error = _yaml_error(exc, wf.line - 1)

    version_present = "version" in sections
    if version_present:
        _check_version(sections["version"], templated, out)

    # Documents without default-values (compiled output, already-rendered specs) go to OSMO's
    # renders almost as they are, so their raw strings are what the second render sees.
    scan_raw = "default-values" not in sections and isinstance(raw_doc, dict)
    lexical_errors = 0
    if scan_raw:
        before = len(out.findings)
        _scan_jinja(raw_doc, [], allowed | sets.keys(), out, None)
        lexical_errors = sum(1 for f in out.findings[before:] if f.severity == "error")

    if templated:
        variables = {**defaults, **sets}
        scratch = _Collector()

        def locate(file_line: int) -> tuple[str, str] | None:
            # Built only on a syntax error: composing the raw YAML costs as much as the render.
            locator = _make_locator(wf, raw_doc)
            return locator(file_line) if locator else None

        rendered = _render(wf.text, variables, allowed, wf.line - 1, scratch, locate)
        # With lexical errors the scan already named each offending marker with its place; keep
        # render notes, and a limit that was hit.
        out.findings.extend(f for f in scratch.findings if not lexical_errors or f.severity != "error"
                            or "render stopped" in f.message)
        if rendered is None:
            _check_unrendered(raw_doc, out)
            return _dedupe(out.findings)
        try:
            doc = _load_yaml(rendered)
        except yaml.YAMLError as exc:
            message, _ = _yaml_error(exc)
            out.error("workflow", f"the rendered workflow is not valid YAML: {message}")
            return out.findings
    else:
        if raw_error:
            out.error("workflow", raw_error[0], raw_error[1])
            return out.findings
        doc = raw_doc

    if not isinstance(doc, dict) or "workflow" not in doc:
        out.error("workflow", "`workflow:` must be a mapping with name and groups or tasks")
        return out.findings
    inlined = _inline_localpaths(doc["workflow"], base_dir, out) if isinstance(doc["workflow"], dict) else []
    check_doc: dict[str, Any] = {"workflow": doc["workflow"]}
    _check_schema(check_doc, out)
    if isinstance(doc["workflow"], dict):
        _check_rules(doc["workflow"], out)
        if not scan_raw:
            _scan_jinja(doc, [], allowed | sets.keys(), out, None)
        else:
            for cpath, task, entry in inlined:
                _scan_string(entry.get("contents"), cpath, allowed | sets.keys(), out, task, entry)
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
            out.findings.append(Finding(f.severity, f.path, f"{f.message} (found in the unrendered text)", f.line))


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


# ---------------------------------------------------------------------------------------------
# Checks


def _check_version(section: _Section, templated: bool, out: _Collector) -> None:
    try:
        loaded = _load_yaml(section.text)
    except yaml.YAMLError as exc:
        message, line = _yaml_error(exc, section.line - 1)
        out.error("version", message, line)
        return
    value = (loaded or {}).get("version") if isinstance(loaded, dict) else None
    ok = False
    if isinstance(value, bool):
        ok = False
    elif isinstance(value, int):
        ok = value == 2
    elif isinstance(value, float):
        ok = value == 2.0
    elif isinstance(value, str):
        try:
            ok = float(value.strip()) == 2.0 and float(value.strip()).is_integer()
        except ValueError:
            ok = False
    if ok:
        return
    message = f"`version` must be 2; got {value!r}; allowed: 2 (an int, a numeric string or 2.0)"
    if templated:
        out.warning(
            "version", message + " (OSMO drops `version` from templated specs, fix it anyway)", section.line
        )
    else:
        out.error("version", message, section.line)


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
        expected = error.validator_value
        expected = " or ".join(expected) if isinstance(expected, list) else expected
        return (
            f"wrong type; got {_short(error.instance)} ({type(error.instance).__name__}); allowed: {expected}"
        )
    if validator == "pattern":
        allowed = hint or f"a match of {error.validator_value}"
        return f"invalid value; got {_short(error.instance)}; allowed: {allowed}"
    if validator == "minItems":
        return f"must not be empty; got {_short(error.instance)}; allowed: {hint or 'at least one item'}"
    if validator == "maxProperties":
        return f"too many entries ({len(error.instance)}); allowed: at most {error.validator_value}"
    if validator == "minLength":
        return "must not be empty"
    if validator == "enum":
        allowed = ", ".join(repr(v) for v in error.validator_value if v is not None)
        return f"invalid value; got {_short(error.instance)}; allowed: {allowed}"
    if validator in ("oneOf", "anyOf"):
        best = jsonschema.exceptions.best_match(error.context) if error.context else None
        if hint:
            return f"invalid value; got {_short(error.instance)}; allowed: {hint}"
        if best is not None and validator == "oneOf" and isinstance(error.instance, dict):
            return _oneof_message(error)
        return f"invalid value; got {_short(error.instance)}" + (
            f"; {best.message}" if best is not None else ""
        )
    return f"{error.message}" + (f"; allowed: {hint}" if hint else "")


def _oneof_message(error: jsonschema.ValidationError) -> str:
    keys = sorted(error.instance)
    return f"invalid entry with keys {keys}; allowed: {{task: <name>, regex?}} or {{url: <data URL>, regex?}}"


def _iter_tasks(workflow: dict[str, Any]) -> list[tuple[int, str, str, dict[str, Any]]]:
    """(group index, group name, task path, task) for every task, groups or plain tasks."""
    out: list[tuple[int, str, str, dict[str, Any]]] = []
    groups = workflow.get("groups")
    if isinstance(groups, list) and groups:
        for gi, group in enumerate(groups):
            if not isinstance(group, dict):
                continue
            for ti, task in enumerate(_seq(group.get("tasks"))):
                if isinstance(task, dict):
                    out.append((gi, str(group.get("name", "")), f"workflow.groups[{gi}].tasks[{ti}]", task))
    else:
        for ti, task in enumerate(_seq(workflow.get("tasks"))):
            if isinstance(task, dict):
                out.append((ti, f"{task.get('name', '')}-group", f"workflow.tasks[{ti}]", task))
    return out


def k8s_name(name: str) -> str:
    """OSMO's name key for uniqueness: lower case, '_' as '-'."""
    return name.lower().replace("_", "-")


def _check_name(value: Any, path: str, what: str, out: _Collector) -> None:
    if isinstance(value, str) and len(value) > MAX_NAME_LENGTH:
        out.error(
            path,
            f"{what} name is too long; shorten it to at most {MAX_NAME_LENGTH} characters; "
            f"got {len(value)} characters ({value[:20]}...)",
        )


def _check_rules(workflow: dict[str, Any], out: _Collector) -> None:
    _check_name(workflow.get("name"), "workflow.name", "workflow", out)
    groups = workflow.get("groups")
    plain = workflow.get("tasks")
    if groups and plain:
        out.error("workflow", "use either `groups` or `tasks`, not both; got both")
    elif not groups and not plain:
        out.error("workflow", "a workflow needs at least one group or task; add `groups:` or `tasks:`")

    tasks = _iter_tasks(workflow)
    if len(tasks) > MAX_TASKS_CHART:
        out.error(
            "workflow",
            f"too many tasks; split the workflow; got {len(tasks)}; allowed: at most "
            f"{MAX_TASKS_CHART} (Helm chart max_num_tasks)",
        )
    elif len(tasks) > MAX_TASKS_CODE_DEFAULT:
        out.warning(
            "workflow",
            f"{len(tasks)} tasks exceed OSMO's code default max_num_tasks={MAX_TASKS_CODE_DEFAULT} "
            f"(the Helm chart sets {MAX_TASKS_CHART}); check the cluster's setting",
        )

    # Names: tasks and groups share one namespace after lower() and '_' -> '-'.
    seen: dict[str, tuple[str, str]] = {}

    def claim(name: Any, path: str, what: str) -> None:
        if not isinstance(name, str):
            return
        key = k8s_name(name)
        if key in seen:
            other_path, other = seen[key]
            out.error(
                path,
                f"{what} name {name!r} clashes with {other!r} at {other_path}; names of tasks and groups "
                "must be unique ignoring case and with '_' equal to '-'; rename one",
            )
        else:
            seen[key] = (path, name)

    if isinstance(groups, list) and groups:
        for gi, group in enumerate(groups):
            if not isinstance(group, dict):
                continue
            _check_name(group.get("name"), f"workflow.groups[{gi}].name", "group", out)
            claim(group.get("name"), f"workflow.groups[{gi}].name", "group")
            group_tasks = [t for t in _seq(group.get("tasks")) if isinstance(t, dict)]
            if len(group_tasks) > 1:
                leads = sum(1 for t in group_tasks if t.get("lead") is True)
                if leads != 1:
                    out.error(
                        f"workflow.groups[{gi}].tasks",
                        f"group {group.get('name')!r} has {leads} lead task(s); mark exactly one task "
                        "`lead: true`",
                    )
    for _, _group, tpath, task in tasks:
        _check_name(task.get("name"), f"{tpath}.name", "task", out)
        claim(task.get("name"), f"{tpath}.name", "task")
        name = task.get("name")
        if isinstance(name, str) and k8s_name(name[:63].rstrip("-_")) == "osmo-ctrl":
            out.error(f"{tpath}.name", "a task may not be named 'osmo-ctrl' (reserved by OSMO); rename it")
    if not (isinstance(groups, list) and groups):
        for _, group_name, tpath, _task in tasks:
            claim(group_name, f"{tpath}.name", "implicit group")

    _check_inputs(workflow, tasks, out)
    resources = workflow.get("resources")
    if resources is None:
        resources = {"default": {}}
    if isinstance(resources, dict):
        _check_resources(resources, out)
    topology_keys: dict[str, frozenset[str]] = {}
    for _, _, tpath, task in tasks:
        _check_task(task, tpath, resources if isinstance(resources, dict) else {}, out)
        spec = _task_resource(task, resources if isinstance(resources, dict) else {})
        topo = spec.get("topology") if isinstance(spec, dict) else None
        keys = frozenset(str(t.get("key")) for t in _seq(topo) if isinstance(t, dict) and "key" in t)
        topology_keys[str(task.get("name"))] = keys
    if len(set(topology_keys.values())) > 1:
        detail = "; ".join(f"{n}: {sorted(k)}" for n, k in topology_keys.items())
        out.error(
            "workflow.resources",
            f"all tasks must use the same topology key set; make them equal; got {detail}",
        )
    _check_labels(workflow.get("labels"), out)


def _task_resource(task: dict[str, Any], resources: dict[str, Any]) -> Any:
    if isinstance(task.get("resources"), dict) and task["resources"]:
        return task["resources"]
    name = task.get("resource", "default")
    return resources.get(name) if isinstance(name, str) else None


def _check_inputs(
    workflow: dict[str, Any], tasks: list[tuple[int, str, str, dict[str, Any]]], out: _Collector
) -> None:
    group_of: dict[str, tuple[int, str]] = {}
    for gi, group_name, _, task in tasks:
        if isinstance(task.get("name"), str):
            group_of[task["name"]] = (gi, group_name)
    for gi, group_name, tpath, task in tasks:
        for ii, item in enumerate(_seq(task.get("inputs"))):
            if not isinstance(item, dict):
                continue
            ipath = f"{tpath}.inputs[{ii}]"
            _check_regex(item.get("regex"), f"{ipath}.regex", out)
            if "url" in item and isinstance(item["url"], str):
                _check_url(item["url"], f"{ipath}.url", out)
            ref = item.get("task")
            if not isinstance(ref, str):
                continue
            if ":" in ref:
                out.note(
                    f"{ipath}.task",
                    f"input {ref!r} names a task of another workflow; OSMO checks it exists and is "
                    "finished at submit (needs the service)",
                )
                continue
            if ref not in group_of:
                names = ", ".join(sorted(group_of)) or "none"
                out.error(
                    f"{ipath}.task",
                    f"Task input {ref} does not exist; name a task of an earlier group; allowed: {names}",
                )
                continue
            src_gi, src_group = group_of[ref]
            if src_gi >= gi:
                where = "the same group" if src_gi == gi else "a later group"
                out.error(
                    f"{ipath}.task",
                    f"task input {ref!r} is in {where} ({src_group!r}); inputs must come from an earlier "
                    f"group, move group {src_group!r} before {group_name!r} (OSMO answers HTTP 500: "
                    f'Group "{group_name}" requires input group "{src_group}" exists before itself.)',
                )
        for oi, item in enumerate(_seq(task.get("outputs"))):
            if isinstance(item, dict):
                if isinstance(item.get("url"), str):
                    _check_url(item["url"], f"{tpath}.outputs[{oi}].url", out)
                _check_regex(item.get("regex"), f"{tpath}.outputs[{oi}].regex", out)


def _check_regex(value: Any, path: str, out: _Collector) -> None:
    if isinstance(value, str) and value:
        try:
            re.compile(value)
        except re.error as exc:
            out.error(path, f"Invalid regex: {value}; fix the regular expression ({exc})")


def _check_url(url: str, path: str, out: _Collector) -> None:
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in URL_SCHEMES:
        out.error(
            path,
            f"Unknown URI scheme: {url!r}; use a data URL; allowed schemes: "
            f"{', '.join(s + '://' for s in URL_SCHEMES)} (OSMO answers HTTP 500)",
        )
        return
    parts = rest[:-1].split("/") if rest.endswith("/") else rest.split("/")
    bad = [p for p in parts if p == "" or any(c in p for c in ",;*")]
    need = URL_SCHEMES[scheme]
    if bad or len(parts) < need:
        why = (
            f"needs at least {need} path components"
            if len(parts) < need
            else "empty component or one of , ; *"
        )
        out.error(
            path,
            f"Incorrectly formatted {scheme} URI: {url!r}; {why}; allowed: {scheme}://<bucket>/<path> "
            "with components free of '/', ',', ';', '*' (OSMO answers HTTP 500)",
        )


_UNIT_BYTES = {"": 1, "B": 1, "m": 1e-3, "K": 1e3, "Ki": 1024, "KiB": 1024, "M": 1e6, "Mi": 2**20, "MiB": 2**20,
               "G": 1e9, "Gi": 2**30, "GiB": 2**30, "T": 1e12, "Ti": 2**40, "TiB": 2**40}


def _quantity(value: Any, path: str, what: str, out: _Collector) -> float | None:
    if value is None:
        return None
    text = str(value)
    match = QUANTITY_RE.match(text)
    if not match:
        return None  # the schema reports the shape
    unit = match.group(3)
    if unit and unit not in UNITS:
        return None  # the schema names the allowed units
    number = float(match.group(1))
    if number * _UNIT_BYTES[unit] < 1024:
        # OSMO converts memory and storage to whole Ki (truncating) and requires the result > 0.
        out.error(path, f"{what} {text!r} is {number * _UNIT_BYTES[unit]:g} bytes"
                  f"{' (no unit means bytes)' if not unit else ''}: OSMO converts it to whole Ki, truncating, "
                  f"which gives 0 Ki, and rejects a {what} that is not > 0; write e.g. {match.group(1)}Gi")
        return None
    if not unit:
        out.warning(
            path,
            f"{what} {text!r} has no unit, so OSMO reads it as bytes; write e.g. {text}Gi",
        )
    return number


def _check_resources(resources: dict[str, Any], out: _Collector) -> None:
    for name, spec in resources.items():
        if not isinstance(spec, dict):
            continue
        rpath = f"workflow.resources.{name}"
        for key in ("memory", "storage"):
            amount = _quantity(spec.get(key), f"{rpath}.{key}", key, out)
            if amount is not None and amount <= 0:
                out.warning(f"{rpath}.{key}", f"{key} must be > 0 under OSMO's default resource validation")
        for key, minimum in (("cpu", 1), ("gpu", 0)):
            value = spec.get(key)
            try:
                number = int(value) if value is not None and not isinstance(value, bool) else None
            except (TypeError, ValueError, OverflowError):
                number = None
            if number is not None and number < minimum:
                op = ">" if minimum == 1 else ">="
                out.warning(
                    f"{rpath}.{key}",
                    f"{key} must be {op} {minimum - 1 if minimum else 0} under OSMO's "
                    f"default resource validation; got {value}",
                )


def _check_task(task: dict[str, Any], tpath: str, resources: dict[str, Any], out: _Collector) -> None:
    name = task.get("name")
    image = task.get("image")
    if isinstance(image, str) and image and not DOCKER_REF_RE.match(image):
        out.error(
            f"{tpath}.image",
            f"image {image!r} is not a docker reference; write [registry/]repository[:tag][@digest] "
            "in lower case (e.g. nvcr.io/nvidia/paidf-simulation:1.0.0)",
        )
    if not (isinstance(task.get("resources"), dict) and task["resources"]):
        ref = task.get("resource", "default")
        if isinstance(ref, str) and ref not in resources:
            if ref == "default":
                out.error(
                    f"{tpath}.resource",
                    f"Task {name} has no specified resource; add `resource: <name>` or a `default` "
                    f"entry under workflow.resources; defined: {', '.join(resources) or 'none'}",
                )
            else:
                out.error(
                    f"{tpath}.resource",
                    f"Requesting undefined resource {ref}; define it under workflow.resources or pick "
                    f"one of: {', '.join(resources) or 'none'}",
                )
    elif isinstance(task.get("resources"), dict):
        _check_resources({f"<task {name}>": task["resources"]}, out)

    seen_paths: dict[str, int] = {}
    for fi, entry in enumerate(_seq(task.get("files"))):
        if not isinstance(entry, dict):
            continue
        fpath = f"{tpath}.files[{fi}]"
        path = entry.get("path")
        if not isinstance(path, str):
            continue
        parts = [p for p in path.split("/") if p]
        if not path.startswith("/osmo/data/output/") and (not parts or parts[0] == "osmo"):
            out.error(
                f"{fpath}.path",
                f"file path {path!r} is empty or under /osmo, which OSMO forbids; mount it elsewhere "
                "(e.g. /tmp/...); allowed under /osmo: only /osmo/data/output/...",
            )
        if path in seen_paths:
            out.error(
                f"{fpath}.path",
                f'Task "{name}" has multiple files at the same path "{path}" (also files[{seen_paths[path]}]); '
                "each file path must be unique",
            )
        else:
            seen_paths[path] = fi
        contents = entry.get("contents")
        if isinstance(contents, str) and len(contents.encode("utf-8")) > K8S_SECRET_LIMIT:
            out.warning(
                f"{fpath}.contents",
                f"file {path!r} is over 1 MiB; each file becomes a Kubernetes Secret, limited to ~1 MiB",
            )

    for key, value in (
        (task.get("exitActions") or {}).items() if isinstance(task.get("exitActions"), dict) else ()
    ):
        epath = f"{tpath}.exitActions.{key}"
        if str(key).upper() not in EXIT_ACTIONS:
            out.error(
                epath,
                f"Invalid exit action {key} for task {name}; allowed: {', '.join(EXIT_ACTIONS)} (any case)",
            )
        if isinstance(value, str) and not EXIT_CODES_RE.match(value):
            out.error(
                epath,
                f"Invalid exit codes {value} for action {key} for task {name}; allowed: codes and "
                "ranges such as '1', '1-5' or '1,3-5' (no spaces)",
            )

    cache = task.get("cacheSize")
    if isinstance(cache, str):
        if cache.endswith("%"):
            number = cache[:-1]
            if not re.fullmatch(r"\d+(\.\d+)?", number) or not 0 <= float(number) <= 100:
                out.error(f"{tpath}.cacheSize", f"cacheSize {cache!r}: a percentage must be 0-100%")
        elif not QUANTITY_RE.match(cache):
            out.error(
                f"{tpath}.cacheSize",
                f"invalid cacheSize {cache!r}; allowed: N% (0-100) or a quantity such as 10Gi",
            )
        else:
            _quantity(cache, f"{tpath}.cacheSize", "cacheSize", out)

    for ci, item in enumerate(_seq(task.get("checkpoint"))):
        if isinstance(item, dict):
            if isinstance(item.get("url"), str):
                _check_url(item["url"], f"{tpath}.checkpoint[{ci}].url", out)
            _check_regex(item.get("regex"), f"{tpath}.checkpoint[{ci}].regex", out)

    for vi, mount in enumerate(_seq(task.get("volumeMounts"))):
        if isinstance(mount, str):
            split = mount.split(":")
            if len(split) > 2 or (len(split) == 2 and split[1] == "") or not split[0]:
                out.error(
                    f"{tpath}.volumeMounts[{vi}]",
                    f"Invalid task volume mount: {mount}; allowed form: src or src:dst",
                )


def _check_labels(labels: Any, out: _Collector) -> None:
    if not isinstance(labels, dict):
        return
    for key, value in labels.items():
        lpath = f"workflow.labels.{key}"
        prefix, sep, name = str(key).rpartition("/")
        if (sep and not LABEL_PREFIX_RE.match(prefix)) or not LABEL_PART_RE.match(name):
            out.error(
                lpath,
                f"invalid label key {key!r}; allowed: [prefix/]name, name of 1-63 characters "
                "[A-Za-z0-9] with - _ . inside",
            )
        if isinstance(value, str) and value and not LABEL_PART_RE.match(value):
            out.error(
                lpath,
                f"invalid label value {value!r}; allowed: 1-63 characters [A-Za-z0-9] with - _ . inside",
            )


# ---------------------------------------------------------------------------------------------
# localpath inlining (the CLI's step between the two renders)


def _inline_localpaths(
    workflow: dict[str, Any], base_dir: Any, out: _Collector
) -> list[tuple[str, Any, Any]]:
    """Inline ``localpath`` files as the CLI does; return (contents path, task, entry) per inlined file."""
    inlined: list[tuple[str, Any, Any]] = []
    for _, _, tpath, task in _iter_tasks(workflow):
        for fi, entry in enumerate(_seq(task.get("files"))):
            if not isinstance(entry, dict) or "localpath" not in entry:
                continue
            fpath = f"{tpath}.files[{fi}]"
            localpath = entry.pop("localpath")
            if "contents" in entry:
                out.error(
                    fpath,
                    "Files tag dont support contents and localpath together; keep one of `contents` "
                    "and `localpath`",
                )
                continue
            entry["contents"] = ""
            if not isinstance(localpath, str):
                out.error(f"{fpath}.localpath", f"localpath must be a path string; got {_short(localpath)}")
                continue
            if base_dir is None:
                out.note(
                    f"{fpath}.localpath",
                    f"localpath {localpath!r} was not read (no workflow file directory); validate the "
                    "workflow file to check it",
                )
                continue
            full = (
                localpath
                if os.path.isabs(localpath)
                else os.path.normpath(os.path.join(os.fspath(base_dir), localpath))
            )
            try:
                entry["contents"] = Path(full).read_bytes().decode("utf-8")
                inlined.append((f"{fpath}.contents", task, entry))
            except FileNotFoundError:
                out.error(
                    f"{fpath}.localpath",
                    f"The file/path {full} does not exist!; fix `localpath` (relative to the workflow "
                    "file's directory as typed)",
                )
            except UnicodeDecodeError as exc:
                out.error(
                    f"{fpath}.localpath",
                    f"{full} is not UTF-8 text ({exc.reason}); the OSMO CLI crashes on it; "
                    "pass binary data as a URL input",
                )
            except OSError as exc:
                out.error(f"{fpath}.localpath", f"cannot read {full}: {exc.strerror}")
    return inlined


# ---------------------------------------------------------------------------------------------
# Second render: lexical scan


def _scan_jinja(node: Any, path: list[Any], allowed: set[str], out: _Collector, ctx: Any) -> None:
    stack: list[tuple[Any, list[Any], Any, Any]] = [(node, path, None, None)]
    while stack:
        value, p, task, entry = stack.pop()
        if isinstance(value, dict):
            if len(p) >= 2 and p[-2] == "tasks":
                task = value
            if len(p) >= 2 and p[-2] == "files":
                entry = value
            for key, item in reversed(list(value.items())):
                stack.append((item, [*p, key], task, entry))
        elif isinstance(value, list):
            for index in range(len(value) - 1, -1, -1):
                stack.append((value[index], [*p, index], task, entry))
        elif isinstance(value, str):
            _scan_string(value, _dotted(p), allowed, out, task, entry)


def _scan_string(text: Any, path: str, allowed: set[str], out: _Collector, task: Any, entry: Any) -> None:
    if not isinstance(text, str) or ("{" not in text):
        return
    for match in JINJA_MARK_RE.finditer(text):
        start = match.start()
        if OSMO_TOKEN_RE.match(text, start):
            continue
        var = SIMPLE_VAR_RE.match(text, start)
        if var and var.group(1) in allowed:
            continue
        line = text.count("\n", 0, start) + 1
        column = start - (text.rfind("\n", 0, start) + 1) + 1
        line_text = text.splitlines()[line - 1] if text else ""
        where = ""
        if isinstance(task, dict) and "name" in task:
            where += f"task {task['name']!r}, "
        if isinstance(entry, dict) and "path" in entry:
            where += f"file {entry['path']!r}, "
        where += f"line {line}, column {column}"
        snippet = line_text.strip()
        snippet = snippet if len(snippet) <= 60 else snippet[:57] + "..."
        mark = match.group(0)
        if mark == "{#":
            why = (
                "`{#` opens a Jinja comment, so OSMO's render fails with 'Missing end of comment tag' "
                "(bash `${#arr[@]}`? use `$(printf '%s\\n' \"${arr[@]}\" | wc -l)`)"
            )
        elif mark == "{%":
            why = "a Jinja statement `{%` is left for OSMO's second render; resolve it at compile time"
        elif var and var.group(1) in OSMO_TOKEN_NAMES:
            why = (
                f"OSMO token written with spaces; write `{{{{{var.group(1)}}}}}` (no spaces) or OSMO "
                "looks it up as a variable and fails"
            )
        elif var:
            why = (
                f"Jinja variable `{{{{ {var.group(1)} }}}}` is undefined in OSMO's second render; bake the "
                f"value in, or set it at submit (`--set {var.group(1)}=...` / `--allow-unset {var.group(1)}`)"
            )
        else:
            why = "a Jinja expression `{{` is left for OSMO's second render; only OSMO tokens like `{{output}}` may stay"
        out.error(path, f"text does not survive OSMO's second Jinja render ({where}: {snippet!r}): {why}")
