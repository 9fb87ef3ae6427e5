"""Planned tasks -> the OSMO v2 document: launchers (Jinja2, StrictUndefined), spec.json, cookbook files,
the injected dig_stages files, resource classes."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

import jinja2

from compiler.emit import dump_yaml
from compiler.flows import resource_classes
from compiler.inject import stage_files
from compiler.paths import TEMPLATE_DIR
from compiler.task import SPEC_PATH, Task


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    """The one Jinja environment: templates from the package, undefined variables are errors."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )


def launcher(*, task: str, summary: str, step: str, python: str = "python3") -> str:
    return (
        environment()
        .get_template("launcher.sh.j2")
        .render(task=task, summary=summary, step=step, python=python)
    )


def spec_json(spec: dict[str, Any]) -> str:
    return json.dumps(spec, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n"


def cookbook_text(data: dict[str, Any], source: str) -> str:
    # Most sweep variants share their cookbooks: dump each distinct one once.
    return _cookbook_text(json.dumps(data, sort_keys=False, allow_nan=False), source)


@lru_cache(maxsize=256)
def _cookbook_text(data_json: str, source: str) -> str:
    return f"# {source}, rendered by dig with the run's knobs applied.\n" + dump_yaml(json.loads(data_json))


def task_files(task: Task, *, placeholders: bool = False) -> list[dict[str, str]]:
    """The task's `files:`: cookbooks, launcher, spec.json, then the dig_stages modules its step imports."""
    files = [{"path": b.path, "contents": cookbook_text(b.data, b.source)} for b in task.cookbooks]
    script = launcher(task=task.name, summary=task.summary, step=task.step, python=task.python)
    files.append({"path": task.script, "contents": script})
    files.append({"path": SPEC_PATH, "contents": spec_json(task.spec)})
    files.extend(stage_files(task.step, placeholders=placeholders))
    return files


def task_dict(task: Task, *, placeholders: bool = False) -> dict[str, Any]:
    """One OSMO task entry, keys in the order the goldens show."""
    out: dict[str, Any] = {"name": task.name, "lead": True, "image": task.image, "resource": task.resource}
    if task.credentials:
        out["credentials"] = task.credentials
    if task.environment:
        out["environment"] = {k: str(v) for k, v in task.environment.items()}
    if task.inputs:
        out["inputs"] = list(task.inputs.values())
    out["command"] = ["bash"]
    out["args"] = [task.script]
    out["files"] = task_files(task, placeholders=placeholders)
    out["outputs"] = [{"url": task.output}]
    return out


_PREFIX = {"gpu-render": "render", "gpu-augment": "augment", "gpu-infer": "infer", "gpu-train": "train"}


def resources(config: dict[str, Any]) -> dict[str, Any]:
    """The resource classes the flow uses, sized from the knobs (GPU classes by their stage prefix)."""
    k = config["knobs"]
    out: dict[str, Any] = {}
    for name in resource_classes(config):
        if name in _PREFIX:
            p = _PREFIX[name]
            out[name] = {"gpu": k[f"{p}_gpu"], "cpu": k[f"{p}_cpu"], "memory": k[f"{p}_memory"]}
            out[name]["storage"] = k[f"{p}_storage"]
        else:
            suffix = "" if name == "cpu-download" else "_large"
            out[name] = {key: k[key + suffix] for key in ("cpu", "memory", "storage")}
        out[name]["platform"] = k["platform"]
    return out


def build_workflow(
    config: dict[str, Any], tasks: list[Task], *, placeholders: bool = False
) -> dict[str, Any]:
    """The OSMO v2 document of one compile, as plain dicts in canonical key order."""
    k = config["knobs"]
    return {
        "version": 2,
        "workflow": {
            "name": k["workflow_name"],
            "timeout": {"exec_timeout": k["exec_timeout"], "queue_timeout": k["queue_timeout"]},
            "resources": resources(config),
            "groups": [{"name": t.group, "tasks": [task_dict(t, placeholders=placeholders)]} for t in tasks],
        },
    }
