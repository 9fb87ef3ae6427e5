"""The `osmo` CLI as dig calls it (spec/osmo_cli.md): subprocess, `-t json`, last JSON object on stdout."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# osmo_cli.md §4: CLI exit codes
CLI_SUBMISSION_ERROR, CLI_USER_ERROR, CLI_INTERRUPTED, CLI_CONNECTION, CLI_RATE_LIMITED = 1, 2, 3, 10, 75


class OsmoError(Exception):
    def __init__(self, args: list[str], rc: int, message: str) -> None:
        super().__init__(f"`osmo {' '.join(args[:2])}` exited {rc}: {message}")
        self.rc, self.message, self.argv = rc, message, args

    @property
    def transient(self) -> bool:
        """Rate limited or server/connection error: retry, never a verdict on the run (§5)."""
        return self.rc in (CLI_CONNECTION, CLI_RATE_LIMITED)


class OsmoMissing(Exception):
    pass


@dataclass
class Result:
    rc: int
    stdout: str
    stderr: str


Runner = Callable[[list[str]], Result]


def subprocess_runner(timeout: float = 120.0) -> Runner:
    def run(args: list[str]) -> Result:
        exe = shutil.which("osmo")
        if exe is None:
            raise OsmoMissing("the osmo CLI is not on PATH (install it and `osmo login URL`)")
        proc = subprocess.run([exe, *args], capture_output=True, text=True, timeout=timeout, check=False)
        return Result(proc.returncode, proc.stdout, proc.stderr)

    return run


def last_json(text: str) -> Any:
    """The last JSON object on stdout: some CLI versions print banner lines before it (§2)."""
    decoder = json.JSONDecoder()
    found, i = None, 0
    while True:
        i = text.find("{", i)
        if i < 0:
            return found
        try:
            obj, end = decoder.raw_decode(text, i)
        except json.JSONDecodeError:
            i += 1
            continue
        if isinstance(obj, dict):
            found = obj
        i = end


def _message(res: Result) -> str:
    doc = last_json(res.stdout) if "{" in res.stdout else None
    if isinstance(doc, dict) and doc.get("message"):
        return str(doc["message"])
    text = (res.stderr.strip() or res.stdout.strip()).splitlines()
    return text[-1] if text else "(no output)"


class Osmo:
    def __init__(self, runner: Runner | None = None) -> None:
        self.runner = runner or subprocess_runner()

    def call(self, *args: str) -> Result:
        return self.runner(list(args))

    def json(self, *args: str) -> Any:
        res = self.call(*args)
        if res.rc != 0:
            raise OsmoError(list(args), res.rc, _message(res))
        doc = last_json(res.stdout)
        if doc is None:
            raise OsmoError(list(args), CLI_USER_ERROR, f"no JSON object on stdout: {res.stdout[-200:]!r}")
        return doc

    def submit(
        self, path: str, *, pool: str | None, name: str | None, labels: dict[str, str], priority: str | None
    ) -> dict[str, Any]:
        args = ["workflow", "submit", path, "-t", "json"]
        if pool:
            args += ["--pool", pool]
        if name:
            args += ["--set", f"name={name}"]
        if priority:
            args += ["--priority", priority]
        for key, value in labels.items():
            args += ["--label", f"{key}={value}"]
        return self.json(*args)

    def query(self, workflow_id: str) -> dict[str, Any]:
        return self.json("workflow", "query", workflow_id, "-t", "json")

    def list_label(self, key: str, value: str) -> list[dict[str, Any]]:
        return list(
            self.json("workflow", "list", "-t", "json", "--label", f"{key}={value}").get("workflows") or []
        )

    def logs(
        self, workflow_id: str, *, task: str | None = None, lines: int | None = None, error: bool = False
    ) -> Result:
        args = ["workflow", "logs", workflow_id]
        if task:
            args += ["-t", task]
        if error:
            args.append("--error")
        if lines:
            args += ["-n", str(lines)]
        return self.call(*args)

    def cancel(self, workflow_id: str) -> dict[str, Any]:
        return self.json("workflow", "cancel", workflow_id, "-t", "json")

    def restart(self, workflow_id: str) -> dict[str, Any]:
        return self.json("workflow", "restart", workflow_id, "-t", "json")


def workflow_id_of(doc: dict[str, Any]) -> str | None:
    """SubmitResponse: `name` (6.3+), `id`/`workflow_id` (6.2)."""
    for key in ("name", "workflow_id", "id"):
        if doc.get(key):
            return str(doc[key])
    return None


def label_refused(err: OsmoError) -> bool:
    """An OSMO before 6.4 does not know --label (argparse or the server says so)."""
    text = err.message.lower()
    return "label" in text and any(w in text for w in ("unrecognized", "unknown", "not supported", "invalid"))
