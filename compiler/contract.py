"""The pods' rules at compile time: every task's spec.json against its step's option declaration,
and every cookbook override against what the scheduled tasks read (conf/cookbooks.yaml)."""

from __future__ import annotations

import importlib
from functools import cache
from typing import Any

from compiler.errors import Diagnostic
from compiler.paths import CONF_DIR


@cache
def step_options(step: str) -> dict[str, Any]:
    """The option declaration of a dig_stages step: the very dict the pod's loader enforces."""
    from dig_stages.__main__ import STEPS

    module, _func = STEPS[step]
    options: dict[str, Any] = importlib.import_module(module).OPTIONS[step]
    return options


def task_problems(task: Any) -> list[tuple[str, Any, str, str]]:
    """(spec key, given, reason, allowed) for every value of the task's spec the pod would refuse."""
    from dig_stages import _common

    problems: list[tuple[str, Any, str, str]]
    _opts, problems = _common.parse_options(step_options(task.step), task.spec, unknown=True)
    if task.step == "image-edit":
        from dig_stages.edit_client import ALIGNMENT_OPTIONS

        block = task.spec.get("align_params") or {}
        decl = {k: v for k, v in ALIGNMENT_OPTIONS.items() if k in block}
        problems += [(f"align_params.{k}", *rest) for k, *rest in _common.parse_options(decl, block)[1]]
    return problems


def check_tasks(tasks: list[Any]) -> list[Diagnostic]:
    """An error for every spec value a pod would refuse, named by the config key it came from."""
    out = []
    for task in tasks:
        for key, given, reason, allowed in task_problems(task):
            source = task.sources.get(key)
            where = source or f"output:{task.name}.spec.{key}"
            tail = "" if source else " (compiler bug: please report)"
            out.append(
                Diagnostic(
                    "error",
                    where,
                    f"{reason}: the pod's loader of step {task.step} "
                    f"(task {task.name}, option '{key}') would refuse it{tail}",
                    given,
                    allowed,
                )
            )
    return out


# -- cookbook fields: read by a scheduled task, set by dig, or not used by this variant ----------------


@cache
def cookbook_facts() -> dict[str, Any]:
    """conf/cookbooks.yaml: per cookbook, its owner group, the tasks that read it, what dig sets."""
    from omegaconf import OmegaConf

    return OmegaConf.to_container(OmegaConf.load(CONF_DIR / "cookbooks.yaml"), resolve=False)  # type: ignore[return-value]


def cookbook_owner(book: str) -> str:
    return str(cookbook_facts()[book]["owner"])


def _covers(prefix: str, path: str) -> bool:
    return path == prefix or path.startswith(prefix + ".") or path.startswith(prefix + "[")


def _variants_using(book: str) -> list[str]:
    from compiler.flows import variants

    return [f"flow={v['flow']} ({name})" for name, v in variants().items() if book in v.get("cookbooks", [])]


def check_cookbook_overrides(
    config: dict[str, Any], overrides: list[tuple[str, Any]], tasks: list[Any]
) -> list[Diagnostic]:
    """Every `cookbooks.<book>.<field>` override either reaches a pod, or is refused with the reason."""
    scheduled = {t.name for t in tasks}
    out = []
    for key, value in overrides:
        _head, book, path = key.split(".", 2) if key.count(".") >= 2 else (*key.split("."), "")
        facts = cookbook_facts().get(book)
        if facts is None or not path:
            continue
        readers = facts["read_by"]
        if not scheduled & set(readers):
            flow = config["flow"]
            out.append(
                Diagnostic(
                    "error",
                    key,
                    f"is not used by this compile (flow={flow['key']}, variant "
                    f"{flow['variant']}): cookbook '{book}' is read only by task(s) "
                    f"{', '.join(readers)}, which this compile does not schedule; "
                    f"it is read when {facts['when']}",
                    value,
                    "; ".join(_variants_using(book)),
                )
            )
            continue
        for field, source in (facts.get("set_by_dig") or {}).items():
            if _covers(field, path):
                out.append(
                    Diagnostic(
                        "error",
                        key,
                        f"is set by dig from {source}; an override would never reach the pod",
                        value,
                        f"leave cookbooks.{book}.{field} as shipped",
                    )
                )
                break
        else:
            passed = facts.get("passed_through")
            if passed is not None and not any(_covers(p, path) for p in passed):
                out.append(
                    Diagnostic(
                        "warning",
                        key,
                        f"is not read by {facts['reader']} (it reads "
                        f"{', '.join(passed)} of cookbook '{book}'); the override has no effect",
                        value,
                        ", ".join(f"cookbooks.{book}.{p}" for p in passed),
                        "A24",
                    )
                )
    return out
