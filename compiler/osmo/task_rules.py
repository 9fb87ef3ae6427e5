"""OSMO's per-task and per-resource field rules (utils/job/task.py TaskSpec, ResourceSpec; spec/osmo_rules.md)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from compiler.osmo.findings import (
    DOCKER_REF_RE,
    EXIT_ACTIONS,
    EXIT_CODES_RE,
    K8S_SECRET_LIMIT,
    LABEL_PART_RE,
    LABEL_PREFIX_RE,
    QUANTITY_RE,
    UNITS,
    URL_SCHEMES,
    _Collector,
    _seq,
)


def _task_resource(task: dict[str, Any], resources: dict[str, Any]) -> Any:
    if isinstance(task.get("resources"), dict) and task["resources"]:
        return task["resources"]
    name = task.get("resource", "default")
    return resources.get(name) if isinstance(name, str) else None


def _check_regex(value: Any, path: str, out: _Collector) -> None:
    if isinstance(value, str) and value:
        try:
            re.compile(value)
        except re.error as exc:
            out.error(path, f"Invalid regex: {value}; fix the regular expression ({exc})")


def _check_url(url: str, path: str, out: _Collector) -> None:
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in URL_SCHEMES:
        out.error(
            path,
            f"Unknown URI scheme: {url!r}; use a data URL; allowed schemes: "
            f"{', '.join(s + '://' for s in URL_SCHEMES)} (OSMO answers HTTP 500)",
        )
        return
    parts = rest[:-1].split("/") if rest.endswith("/") else rest.split("/")
    bad = [p for p in parts if p == "" or any(c in p for c in ",;*")]
    need = URL_SCHEMES[scheme]
    if bad or len(parts) < need:
        why = (
            f"needs at least {need} path components"
            if len(parts) < need
            else "empty component or one of , ; *"
        )
        out.error(
            path,
            f"Incorrectly formatted {scheme} URI: {url!r}; {why}; allowed: {scheme}://<bucket>/<path> "
            "with components free of '/', ',', ';', '*' (OSMO answers HTTP 500)",
        )


_UNIT_BYTES = {
    "": 1,
    "B": 1,
    "m": 1e-3,
    "K": 1e3,
    "Ki": 1024,
    "KiB": 1024,
    "M": 1e6,
    "Mi": 2**20,
    "MiB": 2**20,
    "G": 1e9,
    "Gi": 2**30,
    "GiB": 2**30,
    "T": 1e12,
    "Ti": 2**40,
    "TiB": 2**40,
}


def _quantity(value: Any, path: str, what: str, out: _Collector) -> float | None:
    if value is None:
        return None
    text = str(value)
    match = QUANTITY_RE.match(text)
    if not match:
        return None  # the schema reports the shape
    unit = match.group(3)
    if unit and unit not in UNITS:
        return None  # the schema names the allowed units
    number = float(match.group(1))
    if number * _UNIT_BYTES[unit] < 1024:
        # OSMO converts memory and storage to whole Ki (truncating) and requires the result > 0.
        out.error(
            path,
            f"{what} {text!r} is {number * _UNIT_BYTES[unit]:g} bytes"
            f"{' (no unit means bytes)' if not unit else ''}: OSMO converts it to whole Ki, truncating, "
            f"which gives 0 Ki, and rejects a {what} that is not > 0; write e.g. {match.group(1)}Gi",
        )
        return None
    if not unit:
        out.warning(
            path,
            f"{what} {text!r} has no unit, so OSMO reads it as bytes; write e.g. {text}Gi",
        )
    return number


def _check_resources(resources: dict[str, Any], out: _Collector) -> None:
    for name, spec in resources.items():
        if not isinstance(spec, dict):
            continue
        rpath = f"workflow.resources.{name}"
        for key in ("memory", "storage"):
            amount = _quantity(spec.get(key), f"{rpath}.{key}", key, out)
            if amount is not None and amount <= 0:
                out.warning(f"{rpath}.{key}", f"{key} must be > 0 under OSMO's default resource validation")
        for key, minimum in (("cpu", 1), ("gpu", 0)):
            value = spec.get(key)
            try:
                number = int(value) if value is not None and not isinstance(value, bool) else None
            except (TypeError, ValueError, OverflowError):
                number = None
            if number is not None and number < minimum:
                op = ">" if minimum == 1 else ">="
                out.warning(
                    f"{rpath}.{key}",
                    f"{key} must be {op} {minimum - 1 if minimum else 0} under OSMO's "
                    f"default resource validation; got {value}",
                )


TaskCheck = Callable[[dict[str, Any], str, dict[str, Any], _Collector], None]


@dataclass(frozen=True)
class TaskRule:
    """One OSMO rule on a task's fields: where OSMO enforces it (spec/osmo_rules.md) and the check,
    called as ``fn(task, task path, workflow resources, out)``."""

    name: str
    source: str
    fn: TaskCheck


TASK_RULES: list[TaskRule] = []


def task_rule(name: str, source: str) -> Callable[[TaskCheck], TaskCheck]:
    def deco(fn: TaskCheck) -> TaskCheck:
        TASK_RULES.append(TaskRule(name, source, fn))
        return fn

    return deco


def _check_task(task: dict[str, Any], tpath: str, resources: dict[str, Any], out: _Collector) -> None:
    """Every registered task rule over one task, in registration order."""
    for rule in TASK_RULES:
        rule.fn(task, tpath, resources, out)


@task_rule(
    "image-reference",
    "utils/job/task.py TaskSpec.image: parses with common.docker_parse (utils/job/common.py)",
)
def _image(task: dict[str, Any], tpath: str, resources: dict[str, Any], out: _Collector) -> None:
    image = task.get("image")
    if isinstance(image, str) and image and not DOCKER_REF_RE.match(image):
        out.error(
            f"{tpath}.image",
            f"image {image!r} is not a docker reference; write [registry/]repository[:tag][@digest] "
            "in lower case (e.g. nvcr.io/nvidia/paidf-simulation:1.0.0)",
        )


@task_rule(
    "task-resource",
    "utils/job/task.py task.resource (default `default`): 'Requesting undefined resource X', "
    "'Task T has no specified resource'; inline resources as ResourceSpec",
)
def _task_resource_defined(
    task: dict[str, Any], tpath: str, resources: dict[str, Any], out: _Collector
) -> None:
    name = task.get("name")
    if not (isinstance(task.get("resources"), dict) and task["resources"]):
        ref = task.get("resource", "default")
        if isinstance(ref, str) and ref not in resources:
            if ref == "default":
                out.error(
                    f"{tpath}.resource",
                    f"Task {name} has no specified resource; add `resource: <name>` or a `default` "
                    f"entry under workflow.resources; defined: {', '.join(resources) or 'none'}",
                )
            else:
                out.error(
                    f"{tpath}.resource",
                    f"Requesting undefined resource {ref}; define it under workflow.resources or pick "
                    f"one of: {', '.join(resources) or 'none'}",
                )
    elif isinstance(task.get("resources"), dict):
        _check_resources({f"<task {name}>": task["resources"]}, out)


@task_rule(
    "files",
    "utils/job/task.py File: path not empty, not under /osmo (but /osmo/data/output/), unique in the "
    "task; kb_objects.FileMount.secret: one Kubernetes Secret (~1 MiB) per file",
)
def _files(task: dict[str, Any], tpath: str, resources: dict[str, Any], out: _Collector) -> None:
    name = task.get("name")
    seen_paths: dict[str, int] = {}
    for fi, entry in enumerate(_seq(task.get("files"))):
        if not isinstance(entry, dict):
            continue
        fpath = f"{tpath}.files[{fi}]"
        path = entry.get("path")
        if not isinstance(path, str):
            continue
        parts = [p for p in path.split("/") if p]
        if not path.startswith("/osmo/data/output/") and (not parts or parts[0] == "osmo"):
            out.error(
                f"{fpath}.path",
                f"file path {path!r} is empty or under /osmo, which OSMO forbids; mount it elsewhere "
                "(e.g. /tmp/...); allowed under /osmo: only /osmo/data/output/...",
            )
        if path in seen_paths:
            out.error(
                f"{fpath}.path",
                f'Task "{name}" has multiple files at the same path "{path}" (also files[{seen_paths[path]}]); '
                "each file path must be unique",
            )
        else:
            seen_paths[path] = fi
        contents = entry.get("contents")
        if isinstance(contents, str) and len(contents.encode("utf-8")) > K8S_SECRET_LIMIT:
            out.warning(
                f"{fpath}.contents",
                f"file {path!r} is over 1 MiB; each file becomes a Kubernetes Secret, limited to ~1 MiB",
            )


@task_rule(
    "exit-actions", "utils/job/task.py TaskSpec.exitActions: COMPLETE|FAIL|RESCHEDULE, codes and ranges"
)
def _exit_actions(task: dict[str, Any], tpath: str, resources: dict[str, Any], out: _Collector) -> None:
    name = task.get("name")
    for key, value in (
        (task.get("exitActions") or {}).items() if isinstance(task.get("exitActions"), dict) else ()
    ):
        epath = f"{tpath}.exitActions.{key}"
        if str(key).upper() not in EXIT_ACTIONS:
            out.error(
                epath,
                f"Invalid exit action {key} for task {name}; allowed: {', '.join(EXIT_ACTIONS)} (any case)",
            )
        if isinstance(value, str) and not EXIT_CODES_RE.match(value):
            out.error(
                epath,
                f"Invalid exit codes {value} for action {key} for task {name}; allowed: codes and "
                "ranges such as '1', '1-5' or '1,3-5' (no spaces)",
            )


@task_rule("cache-size", "utils/job/task.py TaskSpec.cacheSize: N% (0-100) or a resource quantity")
def _cache_size(task: dict[str, Any], tpath: str, resources: dict[str, Any], out: _Collector) -> None:
    cache = task.get("cacheSize")
    if isinstance(cache, str):
        if cache.endswith("%"):
            number = cache[:-1]
            if not re.fullmatch(r"\d+(\.\d+)?", number) or not 0 <= float(number) <= 100:
                out.error(f"{tpath}.cacheSize", f"cacheSize {cache!r}: a percentage must be 0-100%")
        elif not QUANTITY_RE.match(cache):
            out.error(
                f"{tpath}.cacheSize",
                f"invalid cacheSize {cache!r}; allowed: N% (0-100) or a quantity such as 10Gi",
            )
        else:
            _quantity(cache, f"{tpath}.cacheSize", "cacheSize", out)


@task_rule(
    "checkpoint",
    "utils/job/task.py CheckpointSpec: url matches STORAGE_BACKEND_REGEX (lib/api/storage.py), regex compiles",
)
def _checkpoint(task: dict[str, Any], tpath: str, resources: dict[str, Any], out: _Collector) -> None:
    for ci, item in enumerate(_seq(task.get("checkpoint"))):
        if isinstance(item, dict):
            if isinstance(item.get("url"), str):
                _check_url(item["url"], f"{tpath}.checkpoint[{ci}].url", out)
            _check_regex(item.get("regex"), f"{tpath}.checkpoint[{ci}].regex", out)


@task_rule("volume-mounts", "utils/job/task.py TaskSpec.volumeMounts: `src` or `src:dst`")
def _volume_mounts(task: dict[str, Any], tpath: str, resources: dict[str, Any], out: _Collector) -> None:
    for vi, mount in enumerate(_seq(task.get("volumeMounts"))):
        if isinstance(mount, str):
            split = mount.split(":")
            if len(split) > 2 or (len(split) == 2 and split[1] == "") or not split[0]:
                out.error(
                    f"{tpath}.volumeMounts[{vi}]",
                    f"Invalid task volume mount: {mount}; allowed form: src or src:dst",
                )


def _check_labels(labels: Any, out: _Collector) -> None:
    if not isinstance(labels, dict):
        return
    for key, value in labels.items():
        lpath = f"workflow.labels.{key}"
        prefix, sep, name = str(key).rpartition("/")
        if (sep and not LABEL_PREFIX_RE.match(prefix)) or not LABEL_PART_RE.match(name):
            out.error(
                lpath,
                f"invalid label key {key!r}; allowed: [prefix/]name, name of 1-63 characters "
                "[A-Za-z0-9] with - _ . inside",
            )
        if isinstance(value, str) and value and not LABEL_PART_RE.match(value):
            out.error(
                lpath,
                f"invalid label value {value!r}; allowed: 1-63 characters [A-Za-z0-9] with - _ . inside",
            )
