"""Errors and diagnostics in Hydra's shape: key path and fix first, then got / allowed."""

from __future__ import annotations

import difflib
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field


def did_you_mean(given: object, allowed: Iterable[str]) -> str:
    """' (did you mean 'x'?)' for the closest allowed spelling, or ''."""
    options = [str(a) for a in allowed]
    close = difflib.get_close_matches(str(given), options, n=1, cutoff=0.6)
    if not close and len(str(given)) >= 3:  # `metal` for `metal_surface`
        close = [o for o in options if o.startswith(str(given))][:1]
    return f" (did you mean '{close[0]}'?)" if close else ""


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


@dataclass(frozen=True)
class Diagnostic:
    """One finding about a composed config; severity is 'error', 'warning' or 'notice'."""

    severity: str
    key: str
    message: str
    got: object = field(default=None, compare=False)
    allowed: str | None = None
    rule: str = ""

    def format(self) -> str:
        head = f"{self.severity.upper()}: {self.key}: {self.message}"
        lines = [head]
        if self.severity != "notice":
            if self.got is not None or self.allowed:
                lines.append(f"    got: {_show(self.got)}")
            if self.allowed:
                lines.append(f"    allowed: {self.allowed}")
        return "\n".join(lines)


class DigError(Exception):
    """A user-facing error: one or more diagnostics, never a traceback unless DIG_FULL_ERROR=1."""

    def __init__(self, diagnostics: list[Diagnostic] | Diagnostic, *, choices: dict[str, str] | None = None):
        self.diagnostics = [diagnostics] if isinstance(diagnostics, Diagnostic) else list(diagnostics)
        self.choices = choices or {}
        super().__init__(self.format())

    def format(self) -> str:
        text = "\n".join(d.format() for d in self.diagnostics)
        if self.choices:
            picked = " ".join(f"{k}={v}" for k, v in self.choices.items())
            text += f"\n    (composed from: {picked})"
        return text


def error(
    key: str, message: str, *, got: object = None, allowed: str | None = None, rule: str = ""
) -> DigError:
    return DigError(Diagnostic("error", key, message, got, allowed, rule))


def cli_error(exc: DigError) -> int:
    """Print a DigError the short way (exit code 1); DIG_FULL_ERROR=1 re-raises for the traceback."""
    if os.environ.get("DIG_FULL_ERROR") == "1":
        raise exc
    print(exc.format(), file=sys.stderr)
    print("Set DIG_FULL_ERROR=1 for the full traceback.", file=sys.stderr)
    return 1
