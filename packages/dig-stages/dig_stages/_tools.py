"""Config sentinels and container tool calls: fill the compiler's placeholders, run a tool and check its exit."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from dig_stages._messages import fail, info

SENTINELS = ("__SCENE__", "__REAL_IMAGE__", "__OUTPUT__")


def fill_sentinels(text: str, values: dict[str, str], required: Iterable[str] = ()) -> str:
    """Replace each sentinel (optionally quoted) by its JSON-quoted value, a valid YAML scalar."""
    for sentinel in required:
        if sentinel not in text:
            fail(
                f"config has no {sentinel} placeholder; it must be rendered by the dig compiler "
                "(re-run `dig compile` instead of editing the task file)"
            )
    for sentinel, value in values.items():
        pattern = re.compile(r"""(["']?)""" + re.escape(sentinel) + r"\1")
        quoted = json.dumps(str(value))
        text = pattern.sub(lambda _m, q=quoted: q, text)
    left = sorted(set(re.findall(r"__(?:SCENE|REAL_IMAGE|OUTPUT)__", text)))
    if left:
        fail(f"config still holds placeholder(s) {', '.join(left)} that this step cannot fill")
    return text


def run_tool(
    cmd: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    cwd: str | Path | None = None,
    log_file: str | Path | None = None,
) -> int:
    """Run a container tool, streaming its output (and teeing it to log_file); return its exit code."""
    full_env = None
    if env:
        full_env = dict(os.environ)
        full_env.update(env)
    info("+ " + " ".join(_shell_quote(c) for c in cmd))
    try:
        if log_file is None:
            return subprocess.run(list(cmd), env=full_env, cwd=cwd, check=False).returncode
        with (
            open(log_file, "w", encoding="utf-8") as log,
            subprocess.Popen(
                list(cmd), env=full_env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            ) as proc,
        ):
            assert proc.stdout is not None
            for line in proc.stdout:
                sys.stdout.write(line)
                log.write(line)
            return proc.wait()
    except FileNotFoundError:
        fail(f"tool not found: {cmd[0]} (is this the right container image?)")
    except PermissionError:
        fail(f"tool not executable: {cmd[0]}")
    return 1  # unreachable; fail() raises


def require_tool(cmd: Sequence[str], *, what: str, **kwargs: Any) -> None:
    """run_tool, failing with `<what> failed (exit N)` and that code when the tool fails."""
    code = run_tool(cmd, **kwargs)
    if code != 0:
        fail(f"{what} failed (exit {code})", code)


def _shell_quote(text: str) -> str:
    return text if re.fullmatch(r"[\w@%+=:,./-]+", text) else "'" + text.replace("'", "'\"'\"'") + "'"


def split_cmd(value: str | Sequence[str]) -> list[str]:
    """A command prefix from a spec value: a JSON list or a whitespace-separated string."""
    if isinstance(value, str):
        return value.split()
    return [str(v) for v in value]
