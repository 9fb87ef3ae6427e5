"""A planned task as plain data, its named inputs, and the planning context the task builders share."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any

from compiler.contract import cookbook_owner
from compiler.errors import error

NAME_TOKEN = "{{ name }}"  # the one submit-time variable (osmo workflow submit --set name=...)
HF_TOKEN = {"hf-token": {"HF_TOKEN": "token"}}
SPEC_PATH = "/tmp/dig/spec.json"

# An input is {"task": <upstream task>} or {"url": <storage URL>}, as OSMO's `inputs:` entries.
Input = dict[str, str]


@dataclass(frozen=True)
class Cookbook:
    """A cookbook file the task ships: in-pod path, the data with the run's values, where it came from."""

    path: str
    data: dict[str, Any]
    source: str  # e.g. "cookbooks.pcba_target (conf/board/0603_H100.yaml)"


@dataclass(frozen=True)
class Task:
    """One OSMO task as the planner decides it; compiler.render turns it into the task dict and files.

    `inputs` are named and ordered; spec, environment and cookbook values refer to an input as
    `ref(name)`, and `assign_inputs` replaces each reference by the OSMO `{{input:N}}` of its position.
    """

    name: str
    group: str
    image: str
    resource: str
    script: str  # in-pod launcher path (upstream script path)
    step: str  # dig_stages step
    summary: str
    spec: dict[str, Any]
    output: str
    inputs: dict[str, Input] = field(default_factory=dict)
    environment: dict[str, str] = field(default_factory=dict)
    credentials: dict[str, Any] | None = None
    cookbooks: list[Cookbook] = field(default_factory=list)
    python: str = "python3"
    # spec key (or align_params.<key>) -> the config key its value came from, for error messages
    sources: dict[str, str] = field(default_factory=dict)


# -- named inputs ------------------------------------------------------------------------------------
_REF = re.compile(r"\{\{input:([A-Za-z_]\w*)\}\}")  # a name; OSMO's own {{input:N}} starts with a digit


def ref(name: str) -> str:
    """The placeholder a spec, environment or cookbook value uses for the task's input `name`."""
    return "{{input:" + name + "}}"


def assign_inputs(task: Task) -> Task:
    """The task with every `ref(name)` replaced by OSMO's `{{input:N}}`, N the input's position."""
    index = {name: i for i, name in enumerate(task.inputs)}

    def sub(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in index:
            raise error(
                f"task {task.name}",
                f"refers to input '{name}', which it does not declare (compiler bug: please report)",
                allowed=", ".join(index),
            )
        return "{{input:" + str(index[name]) + "}}"

    def resolve(value: Any) -> Any:
        if isinstance(value, str):
            return _REF.sub(sub, value)
        if isinstance(value, dict):
            return {k: resolve(v) for k, v in value.items()}
        if isinstance(value, list):
            return [resolve(v) for v in value]
        return value

    return replace(
        task,
        spec=resolve(task.spec),
        environment=resolve(task.environment),
        cookbooks=[replace(b, data=resolve(b.data)) for b in task.cookbooks],
    )


# -- what every task builder reads -------------------------------------------------------------------
class Context:
    """One compile's config with the URL helpers the task builders share."""

    def __init__(self, config: dict[str, Any]):
        self.c = config
        self.k: dict[str, Any] = config["knobs"]
        self.root: str = config["dig_url_root"]
        self.run: str = config["name"] or NAME_TOKEN
        self.uc: str = config["usecase"]["key"]

    def url(self, *parts: str) -> str:
        return "/".join([self.root, *parts])

    def out(self, stage: str) -> str:
        """The URL of a stage directory of this run."""
        return self.url("runs", self.run, stage)

    def cookbook(self, path: str, book: str, data: dict[str, Any] | None = None) -> Cookbook:
        """Cookbook `book` shipped at `path` (its config data, or `data` derived from it)."""
        owner = cookbook_owner(book)
        source = f"cookbooks.{book} (conf/{owner}/{self.c[owner]['key']}.yaml)"
        return Cookbook(path, self.c["cookbooks"][book] if data is None else data, source)
