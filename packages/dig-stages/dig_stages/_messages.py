"""Step messages and errors: `info` / `warn` lines, `fail` (a StageError), `run_main` turning it into an exit code."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any


class StageError(Exception):
    """A check failed; `code` is the exit status (1, or a container tool's own code passed through)."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def info(msg: str) -> None:
    print(msg, flush=True)


def warn(msg: str) -> None:
    print("WARN: " + msg, file=sys.stderr, flush=True)


def fail(msg: str, code: int = 1) -> None:
    """Raise the error a step's `run_main` turns into `ERROR: <msg>` and exit `code`."""
    raise StageError(msg, code)


def run_main(body: Callable[[dict[str, Any]], int | None], opts_factory: Callable[[], dict[str, Any]]) -> int:
    """Run a step body with its options; StageError becomes `ERROR: ...` on stderr and its exit code."""
    try:
        return int(body(opts_factory()) or 0)
    except StageError as exc:
        for i, line in enumerate(str(exc).splitlines() or [""]):
            print(("ERROR: " if i == 0 else "  ") + line, file=sys.stderr, flush=True)
        return exc.code
