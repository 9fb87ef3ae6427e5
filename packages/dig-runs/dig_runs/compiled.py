"""Facts about a run read from its compiled workflow (the contract): name, run name, output root, endpoint."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

_RUNS = re.compile(r"^(?P<root>.+?)/runs/(?P<name>[^/]+)(?:/|$)")
_NAME_TOKEN = re.compile(r"^\{\{\s*name\s*\}\}$")
_HEADER = re.compile(r"^# Compiled by dig from conf/ \((?P<choices>[^)]*)\)\.", re.MULTILINE)


@dataclass
class CompiledRun:
    text: str
    workflow_name: str
    takes_name: bool  # outputs hold {{ name }}: the run name is set at submit time
    compiled_name: str | None  # the run name compiled into the outputs, if any
    output_root: str | None
    endpoint_url: str | None
    render: bool  # a Kit render task runs (pod template: nvoptix + /dev/shm; else /dev/shm only)
    choices: dict[str, str] = field(default_factory=dict)
    tasks: list[str] = field(default_factory=list)


class CompiledError(ValueError):
    pass


def read_compiled(text: str, source: str = "<workflow>") -> CompiledRun:
    try:
        doc: Any = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as exc:
        raise CompiledError(f"{source}: not YAML: {exc}") from None
    wf = doc.get("workflow") if isinstance(doc, dict) else None
    if not isinstance(wf, dict) or not wf.get("name"):
        raise CompiledError(f"{source}: no workflow.name (expected a compiled OSMO v2 workflow)")
    tasks = [t for g in wf.get("groups") or [] for t in g.get("tasks") or []] + list(wf.get("tasks") or [])
    takes_name, compiled_name, root, endpoint, render = False, None, None, None, False
    for task in tasks:
        for out in task.get("outputs") or []:
            m = _RUNS.match(str(out.get("url", ""))) if isinstance(out, dict) else None
            if m:
                root = root or m.group("root")
                if _NAME_TOKEN.match(m.group("name")):
                    takes_name = True
                else:
                    compiled_name = compiled_name or m.group("name")
        env = task.get("environment") or {}
        endpoint = endpoint or env.get("IMAGE_EDIT_ENDPOINT")
        render = render or "paidf-simulation" in str(task.get("image", ""))
    m = _HEADER.search(text)
    choices = dict(c.split("=", 1) for c in m.group("choices").split() if "=" in c) if m else {}
    return CompiledRun(
        text,
        str(wf["name"]),
        takes_name,
        compiled_name,
        root,
        endpoint,
        render,
        choices,
        [str(t.get("name")) for t in tasks],
    )


def key_from_path(path: Path) -> str | None:
    """The compile key a file's place says: workflows_generated/<flow>/<rest>.yaml or build/<flow>/<rest>.yaml."""
    parts = path.resolve().parts
    for anchor in ("workflows_generated", "build"):
        if anchor in parts:
            i = parts.index(anchor)
            rest = parts[i + 1 :]
            if len(rest) == 2 and rest[0] != "sweeps":
                return f"{rest[0]}/{Path(rest[1]).stem}"
    return None


def label_value(value: str) -> str:
    """Kubernetes label value: <= 63 of [A-Za-z0-9._-], alphanumeric at both ends."""
    clean = re.sub(r"[^A-Za-z0-9._-]", ".", value)[:63]
    return clean.strip("._-") or "none"
