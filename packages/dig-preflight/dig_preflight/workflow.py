"""Derive the storage artifacts and credentials a compiled OSMO workflow needs from its YAML."""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from typing import Any

from .flows import DEFAULT_SCENE, DEFAULT_STEP, USECASE_STEP, Artifact, parse_anomaly_types

SPEC_PATH = "/tmp/dig/spec.json"
_INPUT_TOKEN = re.compile(r"\{\{\s*input:(\d+)\s*\}\}")
_NAME_TOKEN = re.compile(r"\{\{\s*name\s*\}\}")
_RUNS = re.compile(r"^(?P<base>.*/runs/)(?P<name>[^/]+)(?:/.*)?$")
# Spec keys (docs/stage-contract.md) that say what an input mount is used for.
_CKPT_KEYS = {"ckpt_dataset"}
_RAW_KEYS = {"submask_base_in", "mask_in", "inference_dataset", "dataset_dir"}
_ASSET_KEYS = {"assets_dir"}
_ZIP_KEYS = {"zip_dir"}
_PRETRAINED_KEYS = {"pretrained_src_in", "pretrained_src"}


class WorkflowError(ValueError):
    """The file is not a workflow this command understands (exit 2)."""


@dataclass
class WorkflowNeeds:
    artifacts: list[Artifact] = field(default_factory=list)
    credentials: dict[str, set[str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    run_name: str | None = None


def _tasks(doc: Any) -> list[dict]:
    wf = doc.get("workflow") if isinstance(doc, dict) else None
    if not isinstance(wf, dict):
        raise WorkflowError("no top-level 'workflow:' mapping (expected an OSMO v2 workflow YAML)")
    tasks = [t for g in wf.get("groups") or [] for t in (g.get("tasks") or [])]
    tasks += list(wf.get("tasks") or [])
    if not tasks:
        raise WorkflowError("workflow has no tasks under 'groups[].tasks' or 'tasks'")
    return [t for t in tasks if isinstance(t, dict)]


def task_spec(task: dict) -> dict:
    """The JSON task spec the compiler ships at /tmp/dig/spec.json, or {}."""
    for f in task.get("files") or []:
        if isinstance(f, dict) and f.get("path") == SPEC_PATH:
            text = f.get("contents", "")
            if f.get("base64"):
                text = base64.b64decode(text).decode("utf-8")
            try:
                spec = json.loads(text)
            except json.JSONDecodeError as exc:
                raise WorkflowError(f"task {task.get('name')!r}: {SPEC_PATH} is not JSON: {exc.msg}") from exc
            return spec if isinstance(spec, dict) else {}
    return {}


def _input_roles(spec: dict) -> dict[int, set[str]]:
    roles: dict[int, set[str]] = {}
    for key, value in spec.items():
        if isinstance(value, str):
            for m in _INPUT_TOKEN.finditer(value):
                roles.setdefault(int(m.group(1)), set()).add(key)
    return roles


def _url_layout(url: str) -> tuple[str, str | None]:
    """(kind, usecase) guessed from the storage layout when the task spec says nothing."""
    if m := re.search(r"/models/pretrained/?$", url):
        return "prefix", None
    if m := re.search(r"/models/([^/]+)/?$", url):
        return "checkpoint", m.group(1)
    if m := re.search(r"/datasets/([^/]+)/raw/?$", url):
        return "raw", m.group(1)
    if re.search(r"/datasets/[^/]+/assets/?$", url):
        return "assets", None
    return "prefix", None


def _artifact_for_input(url: str, keys: set[str], spec: dict, task_name: str) -> Artifact | None:
    layout_kind, usecase = _url_layout(url)
    pairs = spec.get("anomaly_types")
    if isinstance(pairs, str):
        pairs = parse_anomaly_types(pairs)
    if keys & _CKPT_KEYS or (not keys and layout_kind == "checkpoint"):
        if spec.get("fresh_checkpoint"):
            return None  # the checkpoint is a task output of this run, not a storage input
        step = spec.get("checkpoint_step") or USECASE_STEP.get(usecase or "", DEFAULT_STEP)
        return Artifact("checkpoint", url, f"checkpoint ({task_name})", {"step": int(step), "pairs": pairs})
    if keys & _RAW_KEYS or (not keys and layout_kind == "raw"):
        # finetune's dataset_dir takes its taxonomy from defect_spec.jsonl; inference from anomaly_types.
        use_pairs = pairs if keys & {"submask_base_in", "mask_in", "inference_dataset"} or not keys else None
        return Artifact("raw", url, f"raw dataset ({task_name})", {"pairs": use_pairs})
    if keys & _ASSET_KEYS or (not keys and layout_kind == "assets"):
        return Artifact(
            "assets", url, f"assets ({task_name})",
            {"scene": spec.get("scene_filename") or DEFAULT_SCENE, "real_image": spec.get("real_image_filename")},
        )
    if keys & _ZIP_KEYS:
        return Artifact("zip", url, f"zip input ({task_name})")
    if keys & _PRETRAINED_KEYS or url.rstrip("/").endswith("/models/pretrained"):
        return Artifact("pretrained", url, f"pretrained models ({task_name})")
    return Artifact("prefix", url, f"input ({task_name})")


def workflow_needs(doc: Any, *, name: str | None = None) -> WorkflowNeeds:
    """Every URL input (with what must be inside it), the runs/<name>/ to keep free, the credentials."""
    needs = WorkflowNeeds()
    seen: set[tuple[str, str, str]] = set()
    runs: dict[str, str] = {}
    token_seen = False
    for task in _tasks(doc):
        tname = str(task.get("name", "?"))
        spec = task_spec(task)
        roles = _input_roles(spec)
        for idx, inp in enumerate(task.get("inputs") or []):
            if not isinstance(inp, dict) or "url" not in inp:
                continue  # task inputs come from an earlier task of the same run
            url = str(inp["url"]).rstrip("/")
            if "{{" in url:
                needs.notes.append(f"task {tname}: input {url} still holds a template token; not checked")
                continue
            art = _artifact_for_input(url, roles.get(idx, set()), spec, tname)
            if art is None:
                continue
            ident = (art.kind, art.url, json.dumps(art.params, sort_keys=True))
            if ident not in seen:
                seen.add(ident)
                needs.artifacts.append(art)
        for out in task.get("outputs") or []:
            if not isinstance(out, dict) or "url" not in out:
                continue
            m = _RUNS.match(str(out["url"]))
            if not m:
                continue
            run = m.group("name")
            if _NAME_TOKEN.fullmatch(run) or "{{" in run:
                token_seen = True
                if not name:
                    continue
                run = name
            elif name and run != name:
                needs.notes.append(f"output {out['url']} has run name {run!r}, not --name {name!r}; checked {run!r}")
            runs.setdefault(f"{m.group('base')}{run}", run)
        for cred, value in (task.get("credentials") or {}).items():
            keys = needs.credentials.setdefault(str(cred), set())
            if isinstance(value, dict):
                keys.update(str(v) for v in value.values())
    if token_seen and not name:
        needs.notes.append("run name is still the template token {{ name }}: runs/<name>/ check skipped "
                           "(pass --name RUN to check it)")
    for url, run in runs.items():
        needs.artifacts.append(Artifact("run_absent", url, f"run {run!r} output", {"name": run}))
        needs.run_name = run
    return needs
