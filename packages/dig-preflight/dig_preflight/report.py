"""Check results and their two renderings: a readable table and JSON for CI."""

from __future__ import annotations

import json
import shutil
import textwrap
from dataclasses import asdict, dataclass, field
from typing import Any

OK, FAIL, ERROR, SKIP, WARN = "ok", "fail", "error", "skip", "warn"
_MARK = {OK: "OK", FAIL: "FAIL", ERROR: "ERROR", SKIP: "SKIP", WARN: "WARN"}


@dataclass
class Check:
    """One verified fact. `status`: ok, fail (a requirement is not met), error (could not tell), skip, warn."""

    name: str
    status: str
    target: str = ""
    detail: str = ""
    hint: str = ""


@dataclass
class Report:
    command: str
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    exit_code: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def add(self, name: str, status: str, target: str = "", detail: str = "", hint: str = "") -> Check:
        check = Check(name, status, target, detail, hint)
        self.checks.append(check)
        return check

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if c.status in (FAIL, ERROR)]

    def to_json(self) -> str:
        body = {
            "command": self.command,
            "ok": self.exit_code == 0,
            "exit_code": self.exit_code,
            "checks": [asdict(c) for c in self.checks],
            "notes": self.notes,
            **self.extra,
        }
        return json.dumps(body, indent=2, sort_keys=False)

    def to_table(self) -> str:
        width = max(60, min(shutil.get_terminal_size((110, 20)).columns, 140))
        name_w = max([len(c.name) for c in self.checks] + [5])
        lines = [f"{'STATUS':<6}  {'CHECK':<{name_w}}  TARGET / DETAIL"]
        indent = " " * (6 + 2 + name_w + 2)
        for c in self.checks:
            first = c.target or c.detail
            lines.append(f"{_MARK[c.status]:<6}  {c.name:<{name_w}}  {first}")
            rest = [c.detail] if c.target and c.detail else []
            if c.hint and c.status != OK:
                rest.append(f"-> {c.hint}")
            for text in rest:
                lines += textwrap.wrap(
                    text,
                    width,
                    initial_indent=indent,
                    subsequent_indent=indent,
                    break_long_words=False,
                    break_on_hyphens=False,
                ) or [indent]
        for note in self.notes:
            lines.append(f"note: {note}")
        bad = self.failed
        if self.exit_code == 0:
            lines.append(f"PASS: {len(self.checks)} checks ({self.command}); exit 0")
        else:
            lines.append(
                f"FAILED: {len(bad)} of {len(self.checks)} checks ({self.command}); exit {self.exit_code}"
            )
        return "\n".join(lines)
