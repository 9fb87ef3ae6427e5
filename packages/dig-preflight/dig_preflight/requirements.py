"""What a compiled workflow reads from storage: one function that the preflight and the plan share."""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from typing import Any

SPEC_PATH = "/tmp/dig/spec.json"
_INPUT_TOKEN = re.compile(r"\{\{\s*input:(\d+)\s*\}\}")
_NAME_TOKEN = re.compile(r"\{\{\s*name\s*\}\}")
_RUNS = re.compile(r"^(?P<base>.*/runs/)(?P<name>[^/]+)(?:/.*)?$")

# The spec.json keys (docs/stage-contract.md) that say what a URL input mount is used for; the
# rest of what must be inside comes from the same task's spec (taxonomy, step, file names).
CHECKPOINT_KEYS = ("ckpt_dataset",)
RAW_KEYS = ("submask_base_in", "mask_in", "inference_dataset")  # read with the task's anomaly_types
TRAIN_RAW_KEYS = ("dataset_dir",)  # finetune: taxonomy from the dataset's own defect_spec.jsonl
ASSET_KEYS = ("assets_dir",)
ZIP_KEYS = ("zip_dir",)
PRETRAINED_KEYS = ("pretrained_src_in", "pretrained_src")
# spark_lighting.usd (nvidia/Spark-AnomalyGen-USD) references its peers by relative path: the
# tree must sit beside it. A fact about that asset, not about any flow.
SCENE_TREES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "spark_lighting.usd": (
        ("materials", "component", "ECAD_3D", "PCBA"),
        ("pcba_main_s_detail.usd", "pcba_base.usd", "aoi_ring_light.usda"),
    ),
}


class WorkflowError(ValueError):
    """The file is not a workflow this command understands (exit 2)."""


@dataclass
class Requirement:
    """One storage prefix a compiled workflow reads (or must not overwrite), and what must be inside.

    kind: `prefix` (non-empty), `pretrained` (holds a `pretrained/` tree), `checkpoint`
    (ag_config.yaml covering `pairs` + iter_<step>.pt), `raw` (defect_spec.jsonl + a mask folder per
    pair), `assets` (scene USD and its tree [+ real photo]), `zip` (a named file), `run_absent`
    (runs/<name>/ must not exist).
    """

    kind: str
    url: str
    role: str
    read_by: list[str] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)

    def contains(self) -> list[str]:
        """The files and folders the check looks for inside `url`, as a person reads them."""
        p = self.params
        if self.kind == "pretrained":
            return ["pretrained/ (the tree is one level down)"]
        if self.kind == "checkpoint":
            return [
                "ag_config.yaml"
                + (f" (anomaly_types covering {_pairs_text(p['pairs'])})" if p.get("pairs") else ""),
                checkpoint_filename(p["step"]),
            ]
        if self.kind == "raw":
            masks = [f"{m}/mask/{d}/ (at least one image)" for m, d in p.get("pairs") or []]
            spec = 'defect_spec.jsonl (at the root; one {"defect_type": "<MATERIAL>+<DEFECT>"} per line)'
            if not masks:
                masks = ["<material>/mask/<defect>/ for every defect_type in defect_spec.jsonl"]
            return [spec, *masks]
        if self.kind == "assets":
            out = [p["scene"]]
            dirs, files = SCENE_TREES.get(p["scene"], ((), ()))
            if dirs or files:
                out.append(f"beside it: {', '.join(d + '/' for d in dirs)}, {', '.join(files)}")
            if p.get("real_image"):
                out.append(f"{p['real_image']} (the board's real photo)")
            return out
        if self.kind == "zip":
            return [f"{p['file']} (a regular file, not a {p['file']}/ folder)"]
        if self.kind == "run_absent":
            return ["nothing: a re-used run name overwrites the earlier run"]
        return ["at least one non-empty object"]


def checkpoint_filename(step: int) -> str:
    """`iter_<step zero-padded to 9 digits>.pt`, the shipped and trainer naming rule."""
    return f"iter_{int(step):09d}.pt"


def _pairs_text(pairs: list[list[str]]) -> str:
    return ", ".join(f"{m}+{d}" for m, d in pairs)


def tasks_of(doc: Any) -> list[dict]:
    wf = doc.get("workflow") if isinstance(doc, dict) else None
    if not isinstance(wf, dict):
        raise WorkflowError("no top-level 'workflow:' mapping (expected an OSMO v2 workflow YAML)")
    groups = wf.get("groups") or []
    if not isinstance(groups, list):
        raise WorkflowError("workflow.groups is not a list")
    tasks = [t for g in groups if isinstance(g, dict) for t in (g.get("tasks") or [])]
    tasks += list(wf.get("tasks") or [])
    tasks = [t for t in tasks if isinstance(t, dict)]
    if not tasks:
        raise WorkflowError("workflow has no tasks under 'groups[].tasks' or 'tasks'")
    return tasks


def task_spec(task: dict) -> dict:
    """The JSON task spec the compiler ships at /tmp/dig/spec.json, or {}."""
    for f in task.get("files") or []:
        if isinstance(f, dict) and f.get("path") == SPEC_PATH:
            text = f.get("contents", "")
            try:
                if f.get("base64"):
                    text = base64.b64decode(text).decode("utf-8")
                spec = json.loads(text)
            except (ValueError, TypeError) as exc:
                raise WorkflowError(f"task {task.get('name')!r}: {SPEC_PATH} is not JSON: {exc}") from exc
            return spec if isinstance(spec, dict) else {}
    return {}


def _input_roles(spec: dict) -> dict[int, set[str]]:
    roles: dict[int, set[str]] = {}
    for key, value in spec.items():
        if isinstance(value, str):
            for m in _INPUT_TOKEN.finditer(value):
                roles.setdefault(int(m.group(1)), set()).add(key)
    return roles


def _pairs(spec: dict, task: str) -> list[list[str]] | None:
    pairs = spec.get("anomaly_types")
    if pairs is None:
        return None
    if isinstance(pairs, str):
        try:
            pairs = json.loads(pairs)
        except json.JSONDecodeError as exc:
            raise WorkflowError(f"task {task!r}: spec anomaly_types is not JSON: {exc.msg}") from exc
    ok = isinstance(pairs, list) and all(
        isinstance(p, list | tuple)
        and len(p) == 2
        and all(isinstance(s, str) and s and "/" not in s for s in p)
        for p in pairs
    )
    if not ok:
        raise WorkflowError(
            f"task {task!r}: spec anomaly_types must be [material, defect] pairs, got {pairs!r}"
        )
    return [list(p) for p in pairs]


def _spec_str(spec: dict, key: str, task: str) -> str:
    value = spec.get(key)
    if not isinstance(value, str) or not value or value.startswith("/") or ".." in value.split("/"):
        raise WorkflowError(f"task {task!r}: spec {key} must be a relative file name, got {value!r}")
    return value


def _for_input(url: str, keys: set[str], spec: dict, task: str) -> Requirement | None:
    if keys & set(CHECKPOINT_KEYS):
        if spec.get("fresh_checkpoint"):
            return None  # the checkpoint is a task output of this run, not a storage input
        step = spec.get("checkpoint_step")
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise WorkflowError(f"task {task!r}: spec checkpoint_step must be an integer, got {step!r}")
        return Requirement(
            "checkpoint", url, "checkpoint", [task], {"step": step, "pairs": _pairs(spec, task)}
        )
    if keys & set(RAW_KEYS):
        return Requirement("raw", url, "raw dataset", [task], {"pairs": _pairs(spec, task)})
    if keys & set(TRAIN_RAW_KEYS):
        return Requirement("raw", url, "raw dataset", [task], {"pairs": None})
    if keys & set(ASSET_KEYS):
        real = spec.get("real_image_filename")
        return Requirement(
            "assets",
            url,
            "USD assets",
            [task],
            {
                "scene": _spec_str(spec, "scene_filename", task),
                "real_image": _spec_str(spec, "real_image_filename", task) if real is not None else None,
            },
        )
    if keys & set(ZIP_KEYS):
        return Requirement("zip", url, "zip upload", [task], {"file": _spec_str(spec, "zip_filename", task)})
    if keys & set(PRETRAINED_KEYS):
        return Requirement("pretrained", url, "pretrained models", [task])
    return Requirement("prefix", url, "input", [task])


def _merge(into: Requirement, new: Requirement) -> None:
    into.read_by += [t for t in new.read_by if t not in into.read_by]
    if into.kind == "raw":
        # The union of every reader's taxonomy; a reader without one (finetune) adds nothing.
        pairs = list(into.params.get("pairs") or [])
        pairs += [p for p in new.params.get("pairs") or [] if p not in pairs]
        into.params["pairs"] = pairs or None
    elif into.kind == "checkpoint":
        pairs = list(into.params.get("pairs") or [])
        pairs += [p for p in new.params.get("pairs") or [] if p not in pairs]
        into.params["pairs"] = pairs or None


def requirements(doc: Any, *, name: str | None = None, notes: list[str] | None = None) -> list[Requirement]:
    """Every storage requirement of a compiled workflow, in the order its tasks read them.

    Derived from each task's URL inputs, the spec.json keys those inputs feed, and the run
    outputs (`runs/<name>/` must be free). `name` fills a run name the file leaves as `{{ name }}`;
    `notes` collects what could not be checked and why.
    """
    notes = notes if notes is not None else []
    found: dict[tuple, Requirement] = {}
    runs: dict[str, str] = {}
    token_seen = False
    for task in tasks_of(doc):
        _add_inputs(task, found, notes)
        token_seen |= _add_runs(task, name, runs, notes)
    if token_seen and not name:
        notes.append(
            "run name is still the template token {{ name }}: runs/<name>/ check skipped "
            "(pass --name RUN to check it)"
        )
    out = list(found.values())
    for req in out:
        req.role = f"{req.role} ({', '.join(req.read_by)})"
    for url, run in runs.items():
        out.append(Requirement("run_absent", url, f"run {run!r} output", [], {"name": run}))
    return out


def _add_inputs(task: dict, found: dict[tuple, Requirement], notes: list[str]) -> None:
    """The task's URL inputs into `found`, one Requirement per kind/url/params (readers merged)."""
    tname = str(task.get("name", "?"))
    spec = task_spec(task)
    roles = _input_roles(spec)
    for idx, inp in enumerate(task.get("inputs") or []):
        if not isinstance(inp, dict) or "url" not in inp:
            continue  # task inputs come from an earlier task of the same run
        url = str(inp["url"]).rstrip("/")
        if "{{" in url:
            notes.append(f"task {tname}: input {url} still holds a template token; not checked")
            continue
        req = _for_input(url, roles.get(idx, set()), spec, tname)
        if req is None:
            continue
        ident = (
            req.kind,
            req.url,
            req.params.get("step"),
            json.dumps({k: v for k, v in req.params.items() if k not in ("pairs", "step")}, sort_keys=True),
        )
        if ident in found:
            _merge(found[ident], req)
        else:
            found[ident] = req


def _add_runs(task: dict, name: str | None, runs: dict[str, str], notes: list[str]) -> bool:
    """The task's runs/<name>/ outputs into `runs` (url -> run name); True when one is still {{ name }}."""
    token_seen = False
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
            notes.append(f"output {out['url']} has run name {run!r}, not --name {name!r}; checked {run!r}")
        runs.setdefault(f"{m.group('base')}{run}", run)
    return token_seen
