"""OSMO's submit rules that a JSON Schema cannot express (spec/osmo_rules.md, cited per rule)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import yaml

from compiler.osmo.findings import (
    MAX_NAME_LENGTH,
    MAX_TASKS_CHART,
    MAX_TASKS_CODE_DEFAULT,
    _Collector,
    _load_yaml,
    _Section,
    _seq,
    _yaml_error,
)
from compiler.osmo.task_rules import (
    _check_labels,
    _check_regex,
    _check_resources,
    _check_task,
    _check_url,
    _task_resource,
)


def _check_version(section: _Section, templated: bool, out: _Collector) -> None:
    try:
        loaded = _load_yaml(section.text)
    except yaml.YAMLError as exc:
        message, line = _yaml_error(exc, section.line - 1)
        out.error("version", message, line)
        return
    value = (loaded or {}).get("version") if isinstance(loaded, dict) else None
    ok = False
    if isinstance(value, bool):
        ok = False
    elif isinstance(value, int):
        ok = value == 2
    elif isinstance(value, float):
        ok = value == 2.0
    elif isinstance(value, str):
        try:
            ok = float(value.strip()) == 2.0 and float(value.strip()).is_integer()
        except ValueError:
            ok = False
    if ok:
        return
    message = f"`version` must be 2; got {value!r}; allowed: 2 (an int, a numeric string or 2.0)"
    if templated:
        out.warning(
            "version", message + " (OSMO drops `version` from templated specs, fix it anyway)", section.line
        )
    else:
        out.error("version", message, section.line)


def _iter_tasks(workflow: dict[str, Any]) -> list[tuple[int, str, str, dict[str, Any]]]:
    """(group index, group name, task path, task) for every task, groups or plain tasks."""
    out: list[tuple[int, str, str, dict[str, Any]]] = []
    groups = workflow.get("groups")
    if isinstance(groups, list) and groups:
        for gi, group in enumerate(groups):
            if not isinstance(group, dict):
                continue
            for ti, task in enumerate(_seq(group.get("tasks"))):
                if isinstance(task, dict):
                    out.append((gi, str(group.get("name", "")), f"workflow.groups[{gi}].tasks[{ti}]", task))
    else:
        for ti, task in enumerate(_seq(workflow.get("tasks"))):
            if isinstance(task, dict):
                out.append((ti, f"{task.get('name', '')}-group", f"workflow.tasks[{ti}]", task))
    return out


def k8s_name(name: str) -> str:
    """OSMO's name key for uniqueness: lower case, '_' as '-'."""
    return name.lower().replace("_", "-")


def _check_name(value: Any, path: str, what: str, out: _Collector) -> None:
    if isinstance(value, str) and len(value) > MAX_NAME_LENGTH:
        out.error(
            path,
            f"{what} name is too long; shorten it to at most {MAX_NAME_LENGTH} characters; "
            f"got {len(value)} characters ({value[:20]}...)",
        )


@dataclass
class _Ctx:
    workflow: dict[str, Any]
    tasks: list[tuple[int, str, str, dict[str, Any]]]
    resources: dict[str, Any]


@dataclass(frozen=True)
class OsmoRule:
    """One OSMO submit rule: where OSMO enforces it (spec/osmo_rules.md) and the check."""

    name: str
    source: str
    fn: Callable[[_Ctx, _Collector], None]


OSMO_RULES: list[OsmoRule] = []


def osmo_rule(
    name: str, source: str
) -> Callable[[Callable[[_Ctx, _Collector], None]], Callable[[_Ctx, _Collector], None]]:
    def deco(fn: Callable[[_Ctx, _Collector], None]) -> Callable[[_Ctx, _Collector], None]:
        OSMO_RULES.append(OsmoRule(name, source, fn))
        return fn

    return deco


def _check_rules(workflow: dict[str, Any], out: _Collector) -> None:
    """Every registered OSMO rule over one workflow mapping."""
    resources = workflow.get("resources")
    if resources is None:
        resources = {"default": {}}  # OSMO's default
    ctx = _Ctx(workflow, _iter_tasks(workflow), resources if isinstance(resources, dict) else {})
    for rule in OSMO_RULES:
        rule.fn(ctx, out)


@osmo_rule("groups-xor-tasks", "utils/job/workflow.py WorkflowSpec: groups or tasks, not both, at least one")
def _groups_or_tasks(ctx: _Ctx, out: _Collector) -> None:
    groups, plain = ctx.workflow.get("groups"), ctx.workflow.get("tasks")
    if groups and plain:
        out.error("workflow", "use either `groups` or `tasks`, not both; got both")
    elif not groups and not plain:
        out.error("workflow", "a workflow needs at least one group or task; add `groups:` or `tasks:`")


@osmo_rule("max-num-tasks", "utils/job/workflow.py workflow.max_num_tasks (code default 20, Helm chart 100)")
def _max_tasks(ctx: _Ctx, out: _Collector) -> None:
    count = len(ctx.tasks)
    if count > MAX_TASKS_CHART:
        out.error(
            "workflow",
            f"too many tasks; split the workflow; got {count}; allowed: at most "
            f"{MAX_TASKS_CHART} (Helm chart max_num_tasks)",
        )
    elif count > MAX_TASKS_CODE_DEFAULT:
        out.warning(
            "workflow",
            f"{count} tasks exceed OSMO's code default max_num_tasks={MAX_TASKS_CODE_DEFAULT} "
            f"(the Helm chart sets {MAX_TASKS_CHART}); check the cluster's setting",
        )


@osmo_rule("names", "utils/job/common.py NAMEREGEX; WorkflowInfo.validate_name (max_name_length 64)")
def _names(ctx: _Ctx, out: _Collector) -> None:
    _check_name(ctx.workflow.get("name"), "workflow.name", "workflow", out)
    for gi, group in enumerate(_seq(ctx.workflow.get("groups"))):
        if isinstance(group, dict):
            _check_name(group.get("name"), f"workflow.groups[{gi}].name", "group", out)
    for _, _group, tpath, task in ctx.tasks:
        _check_name(task.get("name"), f"{tpath}.name", "task", out)


@osmo_rule(
    "unique-k8s-names", "kb_objects.k8s_name: task and group names unique after lower() and '_' -> '-'"
)
def _unique_names(ctx: _Ctx, out: _Collector) -> None:
    seen: dict[str, tuple[str, str]] = {}

    def claim(name: Any, path: str, what: str) -> None:
        if not isinstance(name, str):
            return
        key = k8s_name(name)
        if key in seen:
            other_path, other = seen[key]
            out.error(
                path,
                f"{what} name {name!r} clashes with {other!r} at {other_path}; names of tasks and groups "
                "must be unique ignoring case and with '_' equal to '-'; rename one",
            )
        else:
            seen[key] = (path, name)

    groups = [g for g in _seq(ctx.workflow.get("groups")) if isinstance(g, dict)]
    for gi, group in enumerate(_seq(ctx.workflow.get("groups"))):
        if isinstance(group, dict):
            claim(group.get("name"), f"workflow.groups[{gi}].name", "group")
    for _, _group, tpath, task in ctx.tasks:
        claim(task.get("name"), f"{tpath}.name", "task")
    if not groups:
        for _, group_name, tpath, _task in ctx.tasks:
            claim(group_name, f"{tpath}.name", "implicit group")


@osmo_rule("reserved-osmo-ctrl", "utils/job/task.py: a task may not be named osmo-ctrl")
def _reserved_name(ctx: _Ctx, out: _Collector) -> None:
    for _, _group, tpath, task in ctx.tasks:
        name = task.get("name")
        if isinstance(name, str) and k8s_name(name[:63].rstrip("-_")) == "osmo-ctrl":
            out.error(f"{tpath}.name", "a task may not be named 'osmo-ctrl' (reserved by OSMO); rename it")


@osmo_rule("one-lead", "utils/job/workflow.py TaskGroupSpec: exactly one lead task in a group of several")
def _one_lead(ctx: _Ctx, out: _Collector) -> None:
    for gi, group in enumerate(_seq(ctx.workflow.get("groups"))):
        if not isinstance(group, dict):
            continue
        group_tasks = [t for t in _seq(group.get("tasks")) if isinstance(t, dict)]
        if len(group_tasks) > 1:
            leads = sum(1 for t in group_tasks if t.get("lead") is True)
            if leads != 1:
                out.error(
                    f"workflow.groups[{gi}].tasks",
                    f"group {group.get('name')!r} has {leads} lead task(s); mark exactly one task `lead: true`",
                )


@osmo_rule("task-inputs", "utils/job/workflow.py: task inputs exist, in an earlier group; outputs by URL")
def _inputs(ctx: _Ctx, out: _Collector) -> None:
    _check_inputs(ctx.tasks, out)


@osmo_rule("resources", "utils/job/task.py ResourceSpec; Helm default resource_validations (> 0)")
def _resources(ctx: _Ctx, out: _Collector) -> None:
    if isinstance(ctx.workflow.get("resources", {}), dict):
        _check_resources(ctx.resources, out)


@osmo_rule("task-fields", "utils/job/task.py TaskSpec: each task rule of task_rules.TASK_RULES, task by task")
def _task_fields(ctx: _Ctx, out: _Collector) -> None:
    for _, _, tpath, task in ctx.tasks:
        _check_task(task, tpath, ctx.resources, out)


@osmo_rule("same-topology-keys", "utils/job/workflow.py: every task uses the same topology key set")
def _topology(ctx: _Ctx, out: _Collector) -> None:
    topology_keys: dict[str, frozenset[str]] = {}
    for _, _, _tpath, task in ctx.tasks:
        spec = _task_resource(task, ctx.resources)
        topo = spec.get("topology") if isinstance(spec, dict) else None
        topology_keys[str(task.get("name"))] = frozenset(
            str(t.get("key")) for t in _seq(topo) if isinstance(t, dict) and "key" in t
        )
    if len(set(topology_keys.values())) > 1:
        detail = "; ".join(f"{n}: {sorted(k)}" for n, k in topology_keys.items())
        out.error(
            "workflow.resources",
            f"all tasks must use the same topology key set; make them equal; got {detail}",
        )


@osmo_rule("labels", "utils/job/workflow.py labels: <= 16, key [prefix/]name, Kubernetes label syntax")
def _labels(ctx: _Ctx, out: _Collector) -> None:
    _check_labels(ctx.workflow.get("labels"), out)


def _check_inputs(tasks: list[tuple[int, str, str, dict[str, Any]]], out: _Collector) -> None:
    group_of: dict[str, tuple[int, str]] = {}
    for gi, group_name, _, task in tasks:
        if isinstance(task.get("name"), str):
            group_of[task["name"]] = (gi, group_name)
    for gi, group_name, tpath, task in tasks:
        for ii, item in enumerate(_seq(task.get("inputs"))):
            if not isinstance(item, dict):
                continue
            ipath = f"{tpath}.inputs[{ii}]"
            _check_regex(item.get("regex"), f"{ipath}.regex", out)
            if "url" in item and isinstance(item["url"], str):
                _check_url(item["url"], f"{ipath}.url", out)
            ref = item.get("task")
            if not isinstance(ref, str):
                continue
            if ":" in ref:
                out.note(
                    f"{ipath}.task",
                    f"input {ref!r} names a task of another workflow; OSMO checks it exists and is "
                    "finished at submit (needs the service)",
                )
                continue
            if ref not in group_of:
                names = ", ".join(sorted(group_of)) or "none"
                out.error(
                    f"{ipath}.task",
                    f"Task input {ref} does not exist; name a task of an earlier group; allowed: {names}",
                )
                continue
            src_gi, src_group = group_of[ref]
            if src_gi >= gi:
                where = "the same group" if src_gi == gi else "a later group"
                out.error(
                    f"{ipath}.task",
                    f"task input {ref!r} is in {where} ({src_group!r}); inputs must come from an earlier "
                    f"group, move group {src_group!r} before {group_name!r} (OSMO answers HTTP 500: "
                    f'Group "{group_name}" requires input group "{src_group}" exists before itself.)',
                )
        for oi, item in enumerate(_seq(task.get("outputs"))):
            if isinstance(item, dict):
                if isinstance(item.get("url"), str):
                    _check_url(item["url"], f"{tpath}.outputs[{oi}].url", out)
                _check_regex(item.get("regex"), f"{tpath}.outputs[{oi}].regex", out)
