"""A stand-in `osmo` CLI for tests: the verbs and flags dig uses, with spec/osmo_cli.md's shapes and exit codes.

Driven by a scenario (JSON in $FAKE_OSMO_DIR/scenario.json); keeps its server state in state.json and
logs every call to calls.jsonl. Scenario keys (all optional):

  banner: [lines printed before the JSON]           refuse_label: true  (an OSMO before 6.4)
  errors: [{"verb": "query", "from": 3, "to": 5, "exit": 75|10}]   (per-verb call numbers, 1-based)
  tasks: {TASK: {"states": [[STATE, polls], ...], "exit_code": N, "error_logs": [...], "logs": [...]}}
  default_task: {"states": [[STATE, polls], ...]}   failure_status: "FAILED_IMAGE_PULL" (workflow status)
  per_submit: {"3": {...scenario keys for the 3rd submitted workflow...}}
  hang_on_submit: N   (the Nth submit is accepted, then the CLI hangs before answering)
  pod_template: {...}  credentials: {...}

A task's states are played one per `query` of its workflow; groups run one after another; when a
group ends with a failed task, every later group's tasks are FAILED_UPSTREAM. A spec the offline
validator (compiler.validate) refuses is refused like OSMO does (exit 1, JSON error).
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

DEFAULT_TASK = {"states": [["SCHEDULING", 1], ["RUNNING", 1], ["COMPLETED", 1]]}
POD_TEMPLATE = {
    "default_user": {
        "spec": {
            "containers": [
                {
                    "name": "{{USER_CONTAINER_NAME}}",
                    "volumeMounts": [
                        {"name": "nvoptix", "mountPath": "/usr/share/nvidia/nvoptix.bin", "readOnly": True},
                        {"name": "dshm", "mountPath": "/dev/shm"},
                    ],
                }
            ],
            "volumes": [
                {"name": "nvoptix", "hostPath": {"path": "/usr/share/nvidia/nvoptix.bin", "type": "File"}},
                {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "32Gi"}},
            ],
        }
    }
}
CREDENTIALS = {"credentials": [{"cred_name": "hf-token", "cred_type": "GENERIC", "profile": ""}]}


class Exit(Exception):
    def __init__(self, rc: int, stdout: str = "", stderr: str = "") -> None:
        self.rc, self.stdout, self.stderr = rc, stdout, stderr


@contextmanager
def locked(state_dir: Path):
    with open(state_dir / "lock", "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _load(path: Path, default: Any) -> Any:
    return json.loads(path.read_text()) if path.exists() else default


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="osmo")
    top = p.add_subparsers(dest="group", required=True)
    wf = top.add_parser("workflow").add_subparsers(dest="verb", required=True)
    s = wf.add_parser("submit")
    s.add_argument("file")
    s.add_argument("-p", "--pool")
    s.add_argument("-t", "--format-type")
    s.add_argument("--set", action="append", default=[])
    s.add_argument("--priority", choices=("LOW", "NORMAL", "HIGH"))
    s.add_argument("--label", action="append", default=[])
    q = wf.add_parser("query")
    q.add_argument("id")
    q.add_argument("-t", "--format-type")
    q.add_argument("-v", action="store_true")
    lg = wf.add_parser("logs")
    lg.add_argument("id")
    lg.add_argument("-t", "--task")
    lg.add_argument("--error", action="store_true")
    lg.add_argument("-n", type=int)
    for verb in ("cancel", "restart"):
        c = wf.add_parser(verb)
        c.add_argument("id")
        c.add_argument("-t", "--format-type")
        c.add_argument("-p", "--pool")
    ls = wf.add_parser("list")
    ls.add_argument("-t", "--format-type")
    ls.add_argument("--label", action="append", default=[])
    ls.add_argument("--status", action="append", default=[])
    cfg = top.add_parser("config").add_subparsers(dest="verb", required=True)
    show = cfg.add_parser("show")
    show.add_argument("name")
    show.add_argument("--format-type")
    cred = top.add_parser("credential").add_subparsers(dest="verb", required=True)
    cl = cred.add_parser("list")
    cl.add_argument("--format-type")
    return p


def _timeline(task: dict[str, Any]) -> list[str]:
    return [state for state, polls in task["states"] for _ in range(int(polls))]


def _task_conf(sc: dict[str, Any], name: str) -> dict[str, Any]:
    return sc.get("tasks", {}).get(name) or sc.get("default_task") or DEFAULT_TASK


def _render(wf: dict[str, Any], sc: dict[str, Any]) -> dict[str, Any]:
    """The WorkflowQueryResponse of a workflow after `wf['polls']` queries."""
    p = wf["polls"]
    t0, upstream_failed, groups, any_failed = 0, None, [], False
    for gname, tasks in wf["groups"]:
        entries, length, gfailed = [], 0, False
        for tname in tasks:
            conf = _task_conf(sc, tname)
            line = _timeline(conf)
            length = max(length, len(line))
            if upstream_failed:
                status = "FAILED_UPSTREAM"
            elif p < t0:
                status = "WAITING"
            else:
                status = line[min(p - t0, len(line) - 1)]
            restarted = wf.get("restarted") and status.startswith("FAILED") and status != "FAILED_UPSTREAM"
            if restarted:
                status = "COMPLETED"
            if wf.get("canceled") and not (status == "COMPLETED" or status.startswith("FAILED")):
                status = "FAILED_CANCELED"
            failed = status.startswith("FAILED")
            gfailed |= failed and status != "FAILED_UPSTREAM"
            entries.append(
                {
                    "name": tname,
                    "retry_id": 0,
                    "status": status,
                    "failure_message": conf.get("failure_message") if failed else None,
                    "exit_code": (3000 if status == "FAILED_UPSTREAM" else conf.get("exit_code", 1))
                    if failed
                    else (0 if status == "COMPLETED" else None),
                    "logs": f"https://osmo.example/logs/{wf['id']}/{tname}",
                    "error_logs": None,
                    "events": None,
                    "pod_name": f"{wf['id']}-{tname}-pod",
                    "node_name": "node-1",
                    "task_uuid": f"uuid-{tname}",
                    "lead": tname == tasks[0],
                }
            )
        done = upstream_failed or (p >= t0 + length - 1)
        gstatus = (
            "FAILED_UPSTREAM"
            if upstream_failed
            else "WAITING"
            if p < t0
            else ("FAILED" if gfailed else "COMPLETED")
            if done and all(e["status"] == "COMPLETED" or e["status"].startswith("FAILED") for e in entries)
            else "RUNNING"
        )
        groups.append(
            {
                "name": gname,
                "status": gstatus,
                "start_time": None,
                "end_time": None,
                "remaining_upstream_groups": [],
                "downstream_groups": [],
                "failure_message": None,
                "tasks": entries,
            }
        )
        if gfailed and gstatus == "FAILED":
            upstream_failed, any_failed = gname, True
        t0 += length
    if wf.get("canceled"):
        status = "FAILED_CANCELED"
    elif any_failed:
        status = sc.get("failure_status", "FAILED")
    elif all(g["status"] == "COMPLETED" for g in groups):
        status = "COMPLETED"
    elif p == 0:
        status = "PENDING"
    else:
        status = "RUNNING"
    return {
        "name": wf["id"],
        "uuid": f"uuid-{wf['id']}",
        "submitted_by": "tester",
        "cancelled_by": None,
        "spec": f"https://osmo.example/spec/{wf['id']}",
        "logs": f"https://osmo.example/logs/{wf['id']}",
        "overview": f"https://osmo.example/workflows/{wf['id']}",
        "submit_time": wf["submit_time"],
        "status": status,
        "groups": groups,
        "pool": wf["pool"],
        "priority": wf["priority"],
        "labels": wf["labels"],
        "outputs": None,
        "warnings": [],
    }


def _validate(path: str, sets: dict[str, str]) -> str | None:
    """OSMO refuses what its own rules refuse: the offline validator holds those rules."""
    from compiler import osmo

    findings = osmo.validate_file(path, sets=dict(sets), allow_unset=set())
    errors = [f for f in findings if f.severity == "error"]
    return "; ".join(f"{f.path}: {f.message}" for f in errors[:3]) if errors else None


def run(argv: list[str], state_dir: Path) -> tuple[int, str, str]:
    try:
        return 0, _run(argv, state_dir), ""
    except Exit as exc:
        return exc.rc, exc.stdout, exc.stderr


def _run(argv: list[str], state_dir: Path) -> str:
    sc = _load(state_dir / "scenario.json", {})
    if sc.get("refuse_label") and "--label" in argv:
        with locked(state_dir), open(state_dir / "calls.jsonl", "a") as log:
            log.write(
                json.dumps({"verb": " ".join(argv[:2]), "n": 0, "argv": argv, "refused": "--label"}) + "\n"
            )
        raise Exit(2, "", "usage: osmo workflow ...\nosmo: error: unrecognized arguments: --label")
    try:
        args = _parser().parse_args(argv)
    except SystemExit:
        raise Exit(2, "", f"osmo: error: unrecognized arguments: {' '.join(argv)}") from None
    verb = f"{args.group} {args.verb}"
    banner = "".join(f"{line}\n" for line in sc.get("banner", []))
    with locked(state_dir):
        state = _load(state_dir / "state.json", {"workflows": {}, "counters": {}, "next": 1})
        n = state["counters"][verb] = state["counters"].get(verb, 0) + 1
        entry = {"verb": verb, "n": n, "argv": argv}
        if verb == "workflow submit":  # how many workflows were live when this one came in
            entry["live"] = sum(
                not _terminal(_render(w, _merged(sc, w))["status"]) for w in state["workflows"].values()
            )
        with open(state_dir / "calls.jsonl", "a") as log:
            log.write(json.dumps(entry) + "\n")
        for err in sc.get("errors", []):
            if err["verb"] == args.verb and err.get("from", 1) <= n <= err.get("to", err.get("from", 1)):
                _save(state_dir, state)
                if err["exit"] == 75:
                    raise Exit(
                        75, banner + json.dumps({"message": "Too Many Requests (429)", "code": 429}), ""
                    )
                raise Exit(
                    err["exit"], "", "Connection error: could not reach https://osmo.example (timed out)"
                )
        out, hang = _dispatch(args, verb, state, sc, n)
        _save(state_dir, state)
    if hang:
        time.sleep(3600)
    return banner + out


def _terminal(status: str) -> bool:
    return status == "COMPLETED" or status.startswith("FAILED")


def _save(state_dir: Path, state: dict[str, Any]) -> None:
    tmp = state_dir / "state.json.tmp"
    tmp.write_text(json.dumps(state))
    os.replace(tmp, state_dir / "state.json")


def _merged(sc: dict[str, Any], wf: dict[str, Any]) -> dict[str, Any]:
    return {**sc, **sc.get("per_submit", {}).get(str(wf["submit_index"]), {})}


def _dispatch(
    args: argparse.Namespace, verb: str, state: dict[str, Any], sc: dict[str, Any], n: int
) -> tuple[str, bool]:
    wfs = state["workflows"]
    if verb == "workflow submit":
        import yaml

        sets = dict(s.split("=", 1) for s in args.set)
        problem = _validate(args.file, sets)
        if problem:
            raise Exit(
                1, json.dumps({"message": f"Workflow validation failed: {problem}", "code": "SUBMISSION"}), ""
            )
        doc = yaml.safe_load(Path(args.file).read_text())
        name = doc["workflow"]["name"]
        wid = f"{name}-{state['next']}"
        state["next"] += 1
        wfs[wid] = {
            "id": wid,
            "polls": 0,
            "pool": args.pool,
            "priority": args.priority or "NORMAL",
            "labels": dict(label.split("=", 1) for label in args.label),
            "submit_index": n,
            "submit_time": "2026-12-01T12:00:00Z",
            "set": sets,
            "groups": [[g["name"], [t["name"] for t in g["tasks"]]] for g in doc["workflow"]["groups"]],
        }
        answer = {
            "name": wid,
            "overview": f"https://osmo.example/workflows/{wid}",
            "logs": f"https://osmo.example/logs/{wid}",
            "spec": None,
            "dashboard_url": f"https://osmo.example/dash/{wid}",
            "warnings": [],
        }
        return json.dumps(answer), sc.get("hang_on_submit") == n
    if verb == "workflow list":
        want = dict(label.split("=", 1) for label in args.label)
        rows = [
            {
                "name": w["id"],
                "status": _render(w, _merged(sc, w))["status"],
                "pool": w["pool"],
                "labels": w["labels"],
                "submit_time": w["submit_time"],
            }
            for w in wfs.values()
            if all(w["labels"].get(k) == v for k, v in want.items())
        ]
        return json.dumps({"workflows": rows}), False
    if verb == "config show":
        return json.dumps(sc.get("pod_template", POD_TEMPLATE)), False
    if verb == "credential list":
        return json.dumps(sc.get("credentials", CREDENTIALS)), False
    wf = wfs.get(args.id)
    if wf is None:
        raise Exit(2, json.dumps({"message": f"Workflow {args.id} not found", "code": 404}), "")
    wsc = _merged(sc, wf)
    if verb == "workflow query":
        wf["polls"] += 1
        return json.dumps(_render(wf, wsc)), False
    if verb == "workflow logs":
        tasks = [args.task] if args.task else [t for _, ts in wf["groups"] for t in ts]
        lines = []
        for t in tasks:
            conf = _task_conf(wsc, t)
            lines += (
                conf.get("error_logs", [])
                if args.error
                else conf.get("logs", [f"[{t}] step 1", f"[{t}] done"])
            )
        if args.n:
            lines = lines[-args.n :]
        return "".join(f"{line}\n" for line in lines), False
    if verb == "workflow cancel":
        wf["canceled"] = True
        return json.dumps({"name": wf["id"]}), False
    if verb == "workflow restart":
        status = _render({**wf, "polls": wf["polls"]}, wsc)["status"]
        if not status.startswith("FAILED"):
            raise Exit(
                2,
                json.dumps(
                    {
                        "message": f"Workflow {wf['id']} is {status}; only failed workflows restart",
                        "code": 400,
                    }
                ),
                "",
            )
        wf["restarted"] = True
        return json.dumps(
            {"name": wf["id"], "overview": "", "logs": "", "spec": None, "dashboard_url": "", "warnings": []}
        ), False
    raise Exit(2, "", f"unsupported: {verb}")


def main() -> int:
    rc, out, err = run(sys.argv[1:], Path(os.environ["FAKE_OSMO_DIR"]))
    sys.stdout.write(out)
    sys.stderr.write(err)
    return rc


if __name__ == "__main__":
    sys.exit(main())
