"""Rendering as OSMO renders: `--set` casting, the sandboxed Jinja environment, StrictUndefined."""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import jinja2
import jinja2.meta
import jinja2.sandbox

from compiler.osmo.findings import JINJA_MARK_RE, OSMO_TOKEN_NAMES, OSMO_TOKEN_RE, SIMPLE_VAR_RE, _Collector
from compiler.osmo.limits import RENDER_LIMIT_S, LimitExceeded, RenderFailed, sandboxed_render


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


def _protect_tokens(source: str) -> tuple[str, dict[str, str]]:
    tokens: dict[str, str] = {}

    def swap(match: re.Match[str]) -> str:
        var = "osmo_token_" + hashlib.sha1(match.group(0).encode()).hexdigest()[:16]
        tokens[var] = match.group(0)
        return "{{ " + var + " }}"

    return OSMO_TOKEN_RE.sub(swap, source), tokens


_UNDEFINED_RE = re.compile(r"^'([^']+)' is undefined$")


@dataclass(frozen=True)
class Source:
    """The text to render, where it starts in the file, and how to name a file line's key path."""

    text: str
    line_offset: int = 0
    locate: Callable[[int], tuple[str, str] | None] | None = None


def _render(source: Source, variables: dict[str, Any], allow_unset: set[str], out: _Collector) -> str | None:
    """Render ``source`` like OSMO; on failure add findings and return None."""
    protected, tokens = _protect_tokens(source.text)
    if all(SIMPLE_VAR_RE.match(protected, m.start()) for m in JINJA_MARK_RE.finditer(protected)):
        # Only plain `{{ var }}` outputs: Jinja would print str(value), so substitute directly
        # (parsing and compiling a large workflow costs milliseconds).
        fast = _render_simple(protected, variables, tokens, allow_unset, out)
        if fast is not None:
            return fast
    try:
        ast, undeclared = _parse_template(protected)
    except jinja2.TemplateSyntaxError as exc:
        _report_syntax_error(exc, source, out)
        return None
    except (LimitExceeded, RenderFailed) as exc:
        out.error("workflow", f"Jinja render stopped: {exc}")
        return None
    context = dict(variables)
    context.update(tokens)
    for var in sorted((undeclared & allow_unset) - variables.keys()):
        context[var] = var  # a stand-in value: the real one comes with `--set` at submit time
        _note_stand_in(var, out)
    rendered, missing = _render_naming_undefined(ast, context, out)
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


def _note_stand_in(var: str, out: _Collector) -> None:
    out.note(
        "workflow",
        f"{var} is set at submit time (`osmo workflow submit --set {var}=...`); "
        f"checked with the stand-in value {var!r}",
    )


_JINJA_ERRORS = (
    "UndefinedError",
    "SecurityError",
    "TemplateError",
    "TemplateRuntimeError",
    "TemplateAssertionError",
)


def _render_naming_undefined(
    ast: Any, context: dict[str, Any], out: _Collector
) -> tuple[str | None, list[str]]:
    """Render in the sandbox; after each undefined variable, define it and render again, so that one run
    names all of them: (the text, or None on another failure; the undefined names)."""
    missing: list[str] = []
    for _ in range(50):
        try:
            rendered, elapsed = sandboxed_render(functools.partial(_compile_render, ast, dict(context)))
        except LimitExceeded as exc:
            out.error("workflow", f"Jinja render stopped: {exc}")
            return None, []
        except RenderFailed as exc:
            match = _UNDEFINED_RE.match(str(exc)) if exc.kind == "UndefinedError" else None
            if match and match.group(1) not in context:
                missing.append(match.group(1))
                context[match.group(1)] = match.group(1)
                continue
            detail = str(exc) if exc.kind.endswith(_JINJA_ERRORS) else f"{exc.kind}: {exc}"
            out.error("workflow", f"Jinja substitution failure: {detail}")
            return None, []
        if elapsed > RENDER_LIMIT_S:
            out.error(
                "workflow",
                f"rendering took {elapsed:.2f} s of CPU; OSMO's sandbox stops a render after {RENDER_LIMIT_S} s",
            )
        return rendered, missing
    return None, []


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
        _note_stand_in(var, out)
    return SIMPLE_VAR_RE.sub(lambda m: _jinja_str(context[m.group(1)]), protected)


def _jinja_str(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


def _report_syntax_error(exc: jinja2.TemplateSyntaxError, source: Source, out: _Collector) -> None:
    line_in_source = exc.lineno or 1
    file_line = line_in_source + source.line_offset
    lines = source.text.splitlines()
    column = None
    if 0 < line_in_source <= len(lines):
        text_line = lines[line_in_source - 1]
        for match in JINJA_MARK_RE.finditer(text_line):
            if not OSMO_TOKEN_RE.match(text_line, match.start()):
                column = match.start() + 1
                break
    where = ""
    path = "workflow"
    located = source.locate(file_line) if source.locate else None
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
