"""Run the `osmo` CLI for JSON answers, keeping its output away from logs (it can carry secrets)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from typing import Any


class OsmoMissing(Exception):
    """No `osmo` executable on PATH."""


@dataclass
class OsmoResult:
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)

    def http_status(self) -> int | None:
        """The standalone 3-digit HTTP status OSMO prints on failures (403, 409, ...), if any."""
        for code in ("403", "409", "401", "404"):
            if re.search(rf"(?<!\d){code}(?!\d)", self.stderr + "\n" + self.stdout):
                return int(code)
        return None


def osmo_path() -> str | None:
    return shutil.which("osmo")


def run_osmo(*args: str, timeout: float = 60.0) -> OsmoResult:
    exe = osmo_path()
    if exe is None:
        raise OsmoMissing("the osmo CLI is not on PATH")
    proc = subprocess.run([exe, *args], capture_output=True, text=True, timeout=timeout, check=False)
    return OsmoResult(proc.returncode, proc.stdout, proc.stderr)


def run_osmo_json(group: str, *args: str, timeout: float = 60.0) -> OsmoResult:
    """`osmo <group> <args> --format-type json`, retried with the flag before the sub-command.

    OSMO CLI versions differ in where `--format-type` lives: on the sub-command, or on the
    command group (`osmo credential --format-type json list`); argparse rejects the wrong one
    with exit 2 and "unrecognized arguments".
    """
    first = run_osmo(group, *args, "--format-type", "json", timeout=timeout)
    if first.returncode == 2 and "unrecognized arguments" in first.stderr:
        return run_osmo(group, "--format-type", "json", *args, timeout=timeout)
    return first
