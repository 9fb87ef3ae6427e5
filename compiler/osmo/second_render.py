"""The second-render scan: what OSMO's second Jinja pass would see, and `localpath` inlining."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from compiler.osmo.findings import (
    JINJA_MARK_RE,
    OSMO_TOKEN_NAMES,
    OSMO_TOKEN_RE,
    SIMPLE_VAR_RE,
    _Collector,
    _dotted,
    _seq,
)
from compiler.osmo.rules import _iter_tasks
from compiler.osmo.schema_messages import _short


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


def _scan_jinja(node: Any, path: list[Any], allowed: set[str], out: _Collector) -> None:
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
