"""`python -m compiler.diff A.yaml B.yaml [--stat] [--json]`: semantic diff of two compiled workflows.

Reports workflow name/timeouts/resources, groups and tasks added, removed or reordered, and per task
image, resource, credentials, environment (per key), inputs, outputs and files (per path: added,
removed, changed; JSON files by key, YAML files by key path old -> new, everything as a unified diff
unless --stat). Exit 0 when identical, 1 when different, 2 on a usage error (like diff).
"""

from __future__ import annotations

import difflib
import json
import sys
from pathlib import Path
from typing import Any

import yaml

TASK_FIELDS = ("group", "image", "resource", "lead", "credentials", "command", "args", "inputs", "outputs")
MISSING = "<absent>"


class UsageError(Exception):
    pass


def load(path: str) -> dict[str, Any]:
    try:
        doc = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise UsageError(f"{path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("workflow"), dict):
        raise UsageError(f"{path} is not an OSMO workflow (no top-level `workflow:` mapping)")
    return doc


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Leaf key paths of a nested mapping/list: {'a.b[0]': 1}; empty containers are leaves (not the root)."""
    if not prefix and isinstance(value, dict | list) and not value:
        return {}
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for key, sub in value.items():
            out.update(flatten(sub, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(value, list) and value:
        out = {}
        for i, sub in enumerate(value):
            out.update(flatten(sub, f"{prefix}[{i}]"))
        return out
    return {prefix: value}


def key_changes(a: Any, b: Any) -> list[dict[str, Any]]:
    fa, fb = flatten(a), flatten(b)
    out = []
    for key in list(fa) + [k for k in fb if k not in fa]:
        old, new = fa.get(key, MISSING), fb.get(key, MISSING)
        if old != new or (key in fa) != (key in fb):
            out.append({"key": key, "old": old, "new": new})
    return out


def map_changes(a: dict[str, Any] | None, b: dict[str, Any] | None) -> dict[str, Any]:
    a, b = a or {}, b or {}
    return {
        "added": {k: b[k] for k in b if k not in a},
        "removed": {k: a[k] for k in a if k not in b},
        "changed": {k: [a[k], b[k]] for k in a if k in b and a[k] != b[k]},
    }


def _parse_structured(path: str, text: str) -> Any:
    try:
        if path.endswith(".json"):
            return json.loads(text)
        if path.endswith((".yaml", ".yml")):
            return yaml.safe_load(text)
    except (ValueError, yaml.YAMLError):
        return None
    return None


def file_changes(fa: list[dict[str, Any]] | None, fb: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    ca = {f.get("path"): str(f.get("contents", f.get("localpath", ""))) for f in fa or []}
    cb = {f.get("path"): str(f.get("contents", f.get("localpath", ""))) for f in fb or []}
    out = []
    for path in list(ca) + [p for p in cb if p not in ca]:
        old, new = ca.get(path), cb.get(path)
        if old == new:
            continue
        status = "added" if old is None else "removed" if new is None else "changed"
        lines = list(
            difflib.unified_diff(
                (old or "").splitlines(), (new or "").splitlines(), f"a{path}", f"b{path}", lineterm="", n=2
            )
        )
        entry: dict[str, Any] = {
            "path": path,
            "status": status,
            "added_lines": sum(1 for ln in lines if ln.startswith("+") and not ln.startswith("+++")),
            "removed_lines": sum(1 for ln in lines if ln.startswith("-") and not ln.startswith("---")),
            "diff": "\n".join(lines),
        }
        if status == "changed":
            sa, sb = _parse_structured(str(path), old or ""), _parse_structured(str(path), new or "")
            if sa is not None and sb is not None:
                entry["keys"] = key_changes(sa, sb)
        out.append(entry)
    return out


def _groups(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The workflow's groups; OSMO's plain `tasks:` form becomes one-task groups named `<task>-group`."""
    wf = doc["workflow"]
    groups = [g for g in wf.get("groups") or [] if isinstance(g, dict)]
    for task in wf.get("tasks") or []:
        if isinstance(task, dict):
            groups.append({"name": f"{task.get('name')}-group", "tasks": [task]})
    return groups


def _tasks(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out = {}
    for group in _groups(doc):
        for task in group.get("tasks") or []:
            if isinstance(task, dict):
                out[str(task.get("name"))] = {**task, "group": group.get("name")}
    return out


def _entry_id(entry: Any) -> str:
    """What an input or output means: the task it reads from or its URL (then its regex), not its position."""
    if isinstance(entry, dict):
        for kind in ("task", "url", "dataset"):
            if kind in entry:
                return f"{kind} {entry[kind]}"
    return json.dumps(entry, sort_keys=True, default=str)


def entry_changes(old: Any, new: Any) -> list[dict[str, Any]]:
    """Inputs/outputs matched by meaning: added, removed, or changed (same source, other fields)."""

    def keyed(entries: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for entry in entries if isinstance(entries, list) else [] if entries is None else [entries]:
            key, n = _entry_id(entry), 2
            while key in out:  # the same source twice: keep both
                key, n = f"{_entry_id(entry)} #{n}", n + 1
            out[key] = entry
        return out

    ka, kb = keyed(old), keyed(new)
    out = [{"key": k, "old": ka[k], "new": kb.get(k, MISSING)} for k in ka if ka[k] != kb.get(k, MISSING)]
    out += [{"key": k, "old": MISSING, "new": kb[k]} for k in kb if k not in ka]
    order_a = [k for k in ka if k in kb]
    if not out and order_a != [k for k in kb if k in ka]:
        out.append({"key": "order", "old": list(ka), "new": list(kb)})
    return out


def diff_docs(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    workflow = _workflow_changes(a, b)
    groups = _group_changes(a, b)
    ta, tb = _tasks(a), _tasks(b)
    tasks = []
    for name in list(ta) + [n for n in tb if n not in ta]:
        change = _task_change(name, ta.get(name), tb.get(name))
        if change is not None:
            tasks.append(change)
    identical = (
        not workflow and not groups["added"] and not groups["removed"] and not groups["order"] and not tasks
    )
    return {"identical": identical, "workflow": workflow, "groups": groups, "tasks": tasks}


def _workflow_changes(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Workflow-level changes: name, timeouts, resource classes, other top-level keys, tasks-vs-groups form."""
    wa, wb = a["workflow"], b["workflow"]
    workflow: dict[str, Any] = {}
    if wa.get("name") != wb.get("name"):
        workflow["name"] = [wa.get("name"), wb.get("name")]
    timeout = map_changes(wa.get("timeout"), wb.get("timeout"))
    if any(timeout.values()):
        workflow["timeout"] = timeout
    ra, rb = wa.get("resources") or {}, wb.get("resources") or {}
    res = {
        "added": [k for k in rb if k not in ra],
        "removed": [k for k in ra if k not in rb],
        "changed": {k: map_changes(ra[k], rb[k]) for k in ra if k in rb and ra[k] != rb[k]},
    }
    if any(res.values()):
        workflow["resources"] = res
    other = key_changes(
        {k: v for k, v in a.items() if k != "workflow"}, {k: v for k, v in b.items() if k != "workflow"}
    )
    form_a, form_b = ("tasks" if wa.get("tasks") else "groups"), ("tasks" if wb.get("tasks") else "groups")
    if form_a != form_b:
        other.append({"key": "workflow form", "old": form_a, "new": form_b})
    if other:
        workflow["other"] = other
    return workflow


def _group_changes(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    ga = [g.get("name") for g in _groups(a)]
    gb = [g.get("name") for g in _groups(b)]
    common_a, common_b = [g for g in ga if g in gb], [g for g in gb if g in ga]
    return {
        "added": [g for g in gb if g not in ga],
        "removed": [g for g in ga if g not in gb],
        "order": {"a": ga, "b": gb} if common_a != common_b else None,
    }


def _task_change(name: str, x: dict[str, Any] | None, y: dict[str, Any] | None) -> dict[str, Any] | None:
    """One task removed, added or changed (None: the same in both)."""
    if y is None:
        assert x is not None
        return {"name": name, "status": "removed", "group": x["group"]}
    if x is None:
        summary = {k: y[k] for k in ("image", "resource", "inputs", "outputs") if k in y}
        files = [{"path": f.get("path"), "status": "added"} for f in y.get("files") or []]
        return {"name": name, "status": "added", "group": y["group"], "summary": summary, "files": files}
    fields = {f: [x.get(f), y.get(f)] for f in TASK_FIELDS if x.get(f) != y.get(f)}
    env = map_changes(x.get("environment"), y.get("environment"))
    files_changed = file_changes(x.get("files"), y.get("files"))
    rest = key_changes(
        {k: v for k, v in x.items() if k not in (*TASK_FIELDS, "environment", "files", "name")},
        {k: v for k, v in y.items() if k not in (*TASK_FIELDS, "environment", "files", "name")},
    )
    if not (fields or any(env.values()) or files_changed or rest):
        return None
    return {
        "name": name,
        "status": "changed",
        "group": y["group"],
        "fields": fields,
        "environment": env,
        "files": files_changed,
        "other": rest,
    }


def _v(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return f"`{text}`" if len(text) < 200 else f"`{text[:197]}...`"


def to_markdown(result: dict[str, Any], a: str, b: str, stat: bool = False) -> str:
    out = [f"# Workflow diff: `{a}` → `{b}`", ""]
    if result["identical"]:
        return "\n".join(out + ["Identical (no semantic difference).", ""])
    wf, groups = result["workflow"], result["groups"]
    if wf:
        out += ["## Workflow", "", *_md_workflow(wf), ""]
    if groups["added"] or groups["removed"] or groups["order"]:
        out += ["## Groups", ""]
        out += [f"- added: `{g}`" for g in groups["added"]]
        out += [f"- removed: `{g}`" for g in groups["removed"]]
        if groups["order"]:
            out.append(f"- order: {' → '.join(groups['order']['a'])}  ⇒  {' → '.join(groups['order']['b'])}")
        out.append("")
    for task in result["tasks"]:
        out += [f"## Task `{task['name']}` ({task['status']}, group `{task['group']}`)", ""]
        if task["status"] == "added":
            out += [f"- {k}: {_v(v)}" for k, v in task["summary"].items()]
            out += [f"- file `{f['path']}` added" for f in task["files"] if not stat]
            out.append("")
        if task["status"] == "changed":
            out += [*_md_changed_task(task, stat), ""]
    return "\n".join(out)


def _md_workflow(wf: dict[str, Any]) -> list[str]:
    out = []
    if "name" in wf:
        out.append(f"- name: {_v(wf['name'][0])} → {_v(wf['name'][1])}")
    for key, (old, new) in (wf.get("timeout") or {}).get("changed", {}).items():
        out.append(f"- timeout.{key}: {_v(old)} → {_v(new)}")
    for kind in ("added", "removed"):
        for key, val in (wf.get("timeout") or {}).get(kind, {}).items():
            out.append(f"- timeout.{key} {kind}: {_v(val)}")
    res = wf.get("resources") or {}
    out += [f"- resource class added: `{r}`" for r in res.get("added", [])]
    out += [f"- resource class removed: `{r}`" for r in res.get("removed", [])]
    for cls, ch in res.get("changed", {}).items():
        out += [f"- resources.{cls}.{k}: {_v(o)} → {_v(n)}" for k, (o, n) in ch["changed"].items()]
        out += [f"- resources.{cls}.{k} added: {_v(v)}" for k, v in ch["added"].items()]
        out += [f"- resources.{cls}.{k} removed: {_v(v)}" for k, v in ch["removed"].items()]
    out += [f"- {c['key']}: {_v(c['old'])} → {_v(c['new'])}" for c in wf.get("other", [])]
    return out


def _md_changed_task(task: dict[str, Any], stat: bool) -> list[str]:
    out = []
    for field, (old, new) in task["fields"].items():
        if field in ("inputs", "outputs"):
            out += [f"- {field} {c['key']}: {_v(c['old'])} → {_v(c['new'])}" for c in entry_changes(old, new)]
        elif isinstance(old, list | dict) and isinstance(new, list | dict):
            # Lists of inputs/outputs: name the entry that changed, not the whole list.
            out += [
                f"- {field}{'' if c['key'].startswith('[') else '.'}{c['key']}: {_v(c['old'])} → "
                f"{_v(c['new'])}"
                for c in key_changes(old, new)
            ]
        else:
            out.append(f"- {field}: {_v(old)} → {_v(new)}")
    env = task["environment"]
    out += [f"- env `{k}`: {_v(o)} → {_v(n)}" for k, (o, n) in env["changed"].items()]
    out += [f"- env `{k}` added: {_v(v)}" for k, v in env["added"].items()]
    out += [f"- env `{k}` removed: {_v(v)}" for k, v in env["removed"].items()]
    out += [f"- {c['key']}: {_v(c['old'])} → {_v(c['new'])}" for c in task["other"]]
    for f in task["files"]:
        out.append(f"- file `{f['path']}` {f['status']} (+{f['added_lines']} −{f['removed_lines']})")
        if stat:
            continue
        out += [f"  - `{c['key']}`: {_v(c['old'])} → {_v(c['new'])}" for c in f.get("keys", [])]
        if f["diff"] and (f["status"] != "changed" or not f.get("keys")):
            out += ["", "```diff", f["diff"], "```", ""]
    return out


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    flags = {a for a in args if a.startswith("-")}
    files = [a for a in args if not a.startswith("-")]
    try:
        unknown = flags - {"--stat", "--json"}
        if unknown or len(files) != 2:
            why = (
                f"unknown option {sorted(unknown)[0]!r}" if unknown else f"expected 2 files, got {len(files)}"
            )
            raise UsageError(f"{why}; usage: python -m compiler.diff A.yaml B.yaml [--stat] [--json]")
        result = diff_docs(load(files[0]), load(files[1]))
    except UsageError as exc:
        print(f"usage error: {exc}", file=sys.stderr)
        return 2
    if "--json" in flags:
        if "--stat" in flags:
            for task in result["tasks"]:
                for f in task.get("files", []):
                    f.pop("diff", None)
        print(
            json.dumps(
                {"a": files[0], "b": files[1], **result},
                indent=2,
                ensure_ascii=False,
                default=str,
                allow_nan=False,
            )
        )
    else:
        print(to_markdown(result, files[0], files[1], stat="--stat" in flags), end="")
    return 0 if result["identical"] else 1


if __name__ == "__main__":
    sys.exit(main())
