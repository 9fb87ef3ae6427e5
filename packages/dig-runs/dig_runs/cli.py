"""`dig submit|runs|watch|logs|cancel|restart|fetch|endpoint ...`: DIG runs on OSMO, every run recorded.

    dig submit flow=day0 usecase=pcb --pool my-pool          # compile, preflight, stamp, submit, record
    dig submit build/day0/pcb__0603_H100__pretrained.yaml --pool my-pool --yes
    dig submit --sweep build/sweeps/<id> --pool my-pool --max-inflight 4 --yes
    dig runs [--status RUNNING] [--sweep ID] [--json]
    dig watch RUN|ID [--interval S]        dig watch --sweep ID
    dig logs RUN [--task T] [-n N] [--error]
    dig cancel RUN|ID [--yes]              dig restart RUN|ID
    dig fetch RUN [--preview] [--download] [--dest DIR]
    dig endpoint manifest [--out FILE]     dig endpoint check [URL]

The run record is SQLite at $XDG_STATE_HOME/dig/runs.sqlite (DIG_RUNS_DB or DIG_STATE_DIR override).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import secrets
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dig_runs import signatures as sig
from dig_runs.osmo import Osmo, OsmoError, OsmoMissing, label_refused, workflow_id_of
from dig_runs.store import NOT_SUBMITTED, SUBMIT_FAILED, SUBMITTED, SUBMITTING, UNRESOLVED, Store
from dig_runs.watch import Clock

VERBS = ("submit", "runs", "watch", "logs", "cancel", "restart", "fetch", "endpoint")
WATCH_EXITS = """exit codes (watch):
  0  COMPLETED
  1  FAILED: a task failed (its cause and fix are printed)
  2  usage error (unknown run, bad arguments)
  3  canceled or timed out: FAILED_CANCELED, FAILED_EXEC_TIMEOUT, FAILED_QUEUE_TIMEOUT
  4  infrastructure: FAILED_SERVER_ERROR, FAILED_EVICTED, FAILED_START_ERROR, FAILED_IMAGE_PULL,
     FAILED_BACKEND_ERROR, FAILED_START_TIMEOUT, FAILED_PREEMPTED (a restart may help)
  5  FAILED_SUBMISSION
  130 interrupted (nothing is canceled)"""
SUBMIT_EXITS = """exit codes (submit):
  0  submitted and recorded (a sweep: every variant submitted)
  1  refused: preflight failed, run name taken, OSMO refused the workflow
  2  usage error (bad overrides, compile error, no --yes without a terminal)
  4  osmo failed (not on PATH, server or connection error: the record is resolved by the next command)"""


class UsageError(Exception):
    pass


@dataclass
class Ctx:
    store: Store
    osmo: Osmo
    clock: Clock
    out: Any
    json: bool

    def say(self, text: str = "") -> None:
        print(text, file=sys.stderr if self.json else self.out, flush=True)


# ----------------------------------------------------------------------------- crash recovery


def _alive(submitter: str | None) -> bool:
    host, _, pid = (submitter or "").rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return int(pid) != os.getpid()


def resolve_pending(ctx: Ctx, *, include_own: bool = False) -> None:
    """Rows left `submitting` by a crash: find them in OSMO by label, never submit again."""
    for run in ctx.store.pending():
        if _alive(run.submitter) and not include_own:
            continue  # another dig process is submitting it right now
        resolve_one(ctx, run)


def resolve_one(ctx: Ctx, run: Any) -> str:
    labels = run.labels_dict
    if "dig-run" not in labels:
        ctx.store.finish_submit(
            run.run_name,
            workflow_id=None,
            state=UNRESOLVED,
            note="submitted without labels (OSMO < 6.4): cannot be found by label; check `osmo workflow list`",
        )
        ctx.say(
            f"note: run {run.run_name}: an interrupted submit cannot be resolved without labels; marked unresolved"
        )
        return UNRESOLVED
    try:
        found = ctx.osmo.list_label("dig-run", labels["dig-run"])
    except (OsmoError, OsmoMissing) as exc:
        ctx.say(
            f"note: run {run.run_name}: interrupted submit not resolved yet ({exc}); will retry next command"
        )
        return SUBMITTING
    if found:
        wid = str(found[0].get("name"))
        ctx.store.finish_submit(
            run.run_name,
            workflow_id=wid,
            state=SUBMITTED,
            note="resolved after an interrupted submit (osmo workflow list --label)",
        )
        ctx.say(f"note: run {run.run_name}: interrupted submit had reached OSMO as {wid}; recorded")
        return SUBMITTED
    ctx.store.finish_submit(
        run.run_name,
        workflow_id=None,
        state=NOT_SUBMITTED,
        note="interrupted before OSMO accepted it (not in osmo workflow list --label)",
    )
    ctx.say(f"note: run {run.run_name}: interrupted submit never reached OSMO; marked not submitted")
    return NOT_SUBMITTED


# ----------------------------------------------------------------------------- submit


@dataclass
class Input:
    path: Path
    text: str
    key: str | None
    overrides: list[str]
    choices: dict[str, str]


def _compiled_input(target: list[str]) -> Input:
    from dig_runs.compiled import key_from_path

    if len(target) == 1 and "=" not in target[0]:
        path = Path(target[0])
        if not path.is_file():
            raise UsageError(f"submit: {target[0]!r} is not a file and not a key=value override")
        return Input(path, path.read_text(encoding="utf-8"), key_from_path(path), [], {})
    if not target:
        raise UsageError(
            "submit: give overrides (flow=day0 usecase=pcb ...), a compiled FILE, or --sweep DIR"
        )
    from compiler.compose import parse_overrides
    from compiler.errors import DigError
    from compiler.pipeline import compile_request, display, output_path, write_atomic
    from compiler.prefs import load_prefs

    try:
        compiled = compile_request(parse_overrides(target), prefs=load_prefs())
    except DigError as exc:
        raise UsageError(exc.format()) from None
    for diag in compiled.diagnostics:
        print(diag.format(), file=sys.stderr)
    path = write_atomic(output_path(compiled), compiled.text)
    print(f"compiled {compiled.key} -> {display(path)}", file=sys.stderr)
    return Input(path, compiled.text, compiled.key, list(target), dict(compiled.choices))


def _capture(fn: Any, argv: list[str]) -> tuple[int, str]:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = fn(argv)
    return code, buf.getvalue()


def preflight(ctx: Ctx, inp: Input, run: Any, name: str | None) -> bool:
    """The preflights the compiled file asks for: storage + OSMO credentials, pod template, endpoint."""
    from dig_preflight.cli import main as preflight_main

    ok = True
    argv = ["workflow", str(inp.path), "--json"] + (["--name", name] if name else [])
    code, text = _capture(preflight_main, argv)
    ok &= _report_preflight(ctx, "workflow (storage, run name, credentials)", code, text, passing=(0,))
    checks = "render" if run.render else "train"
    code, text = _capture(preflight_main, ["pod-template", "--checks", checks, "--json"])
    ok &= _report_preflight(ctx, f"pod-template --checks {checks}", code, text, passing=(0, 3))
    if run.endpoint_url:
        from dig_runs.endpoint import check

        res = check(run.endpoint_url, timeout=3.0)
        if not res.reachable:
            ctx.say(
                f"preflight endpoint: SKIP {res.url} is not reachable from here ({res.message}); "
                "check it from inside the cluster (`dig endpoint check URL` in a pod)"
            )
        else:
            ctx.say(f"preflight endpoint: {'OK' if res.ok else 'FAIL'} {res.url}: {res.message}")
            ok &= res.ok
    return ok


def _report_preflight(ctx: Ctx, label: str, code: int, text: str, *, passing: tuple[int, ...]) -> bool:
    try:
        report = json.loads(text)
    except ValueError:
        report = {"checks": [], "notes": [text.strip()]}
    good = code in passing
    ctx.say(f"preflight {label}: {'OK' if good else 'FAILED'} (exit {code})")
    for check in report.get("checks", []):
        if check.get("status") in ("fail", "error") or not good:
            hint = f" -> {check['hint']}" if check.get("hint") else ""
            ctx.say(
                f"  {check.get('status', '').upper()} {check.get('name')}: {check.get('target') or ''} "
                f"{check.get('detail') or ''}{hint}".rstrip()
            )
    return good


def _confirm(question: str, yes: bool) -> None:
    if yes:
        return
    if not sys.stdin.isatty():
        raise UsageError(f"{question} needs confirmation: not a terminal, pass --yes")
    if input(f"{question} [y/N] ").strip().lower() not in ("y", "yes"):
        raise UsageError("not confirmed")


def submit_one(
    ctx: Ctx,
    inp: Input,
    args: argparse.Namespace,
    *,
    sweep: str | None = None,
    variant: str | None = None,
    check: bool = True,
) -> tuple[int, dict[str, Any]]:
    from dig_runs.compiled import label_value, read_compiled

    run = read_compiled(inp.text, str(inp.path))
    if run.takes_name:
        name, set_name = f"{run.workflow_name}-{secrets.token_hex(4)}", True
    elif run.compiled_name:
        name, set_name = run.compiled_name, False
    else:  # setup flows take no run name: the record still needs one, OSMO does not
        name, set_name = f"{run.workflow_name}-{secrets.token_hex(4)}", False
    if ctx.store.get(name) is not None:
        ctx.say(
            f"submit: run name {name!r} is already recorded (`dig runs`); compile without name= to get a fresh one"
        )
        return 1, {"run": name, "error": "run name taken"}
    if check:
        if args.skip_preflight:
            ctx.say("preflight: skipped (--skip-preflight)")
        elif not preflight(ctx, inp, run, name if run.takes_name or run.compiled_name else None):
            ctx.say("submit: stopped by the preflight above (fix it, or --skip-preflight to submit anyway)")
            return 1, {"run": name, "error": "preflight failed"}
        _confirm(f"submit {name} to pool {args.pool or '(default)'}?", args.yes)
    import hashlib

    key = inp.key or f"file-{hashlib.sha256(inp.text.encode()).hexdigest()[:8]}"
    labels = {"dig-key": label_value(key), "dig-run": label_value(name)}
    if sweep:
        labels.update({"dig-sweep": label_value(sweep), "dig-variant": label_value(variant or "")})
    choices = inp.choices or run.choices
    ctx.store.begin_submit(
        run_name=name,
        compiled=inp.text.encode(),
        compile_key=key,
        overrides=inp.overrides,
        pool=args.pool,
        priority=args.priority,
        labels=labels,
        workflow_name=run.workflow_name,
        choices=choices,
        output_root=run.output_root,
        sweep_id=sweep,
        variant=variant,
    )
    note = None
    try:
        try:
            answer = ctx.osmo.submit(
                str(inp.path),
                pool=args.pool,
                name=name if set_name else None,
                labels=labels,
                priority=args.priority,
            )
        except OsmoError as err:
            if not label_refused(err):
                raise
            note = "this OSMO does not support --label (before 6.4): submitted without labels"
            ctx.say(f"note: {note}")
            ctx.store.finish_submit(name, workflow_id=None, state=SUBMITTING, labels={})
            answer = ctx.osmo.submit(
                str(inp.path),
                pool=args.pool,
                name=name if set_name else None,
                labels={},
                priority=args.priority,
            )
            labels = {}
    except OsmoMissing as exc:
        ctx.store.finish_submit(name, workflow_id=None, state=NOT_SUBMITTED, note=str(exc))
        ctx.say(f"submit: {exc}")
        return 4, {"run": name, "error": str(exc)}
    except OsmoError as err:
        if err.transient:
            ctx.say(
                f"submit: {err}; outcome unknown: resolving with `osmo workflow list --label dig-run={name}`"
            )
            state = resolve_one(ctx, ctx.store.get(name))
            if state == SUBMITTED:
                rec = ctx.store.get(name)
                return 0, {"run": name, "workflow_id": rec.workflow_id if rec else None}
            return 4, {"run": name, "error": err.message}
        ctx.store.finish_submit(name, workflow_id=None, state=SUBMIT_FAILED, note=err.message)
        ctx.say(f"submit: OSMO refused {inp.path}: {err.message}")
        return 1, {"run": name, "error": err.message}
    wid = workflow_id_of(answer)
    ctx.store.finish_submit(name, workflow_id=wid, state=SUBMITTED, note=note)
    body = {
        "run": name,
        "workflow_id": wid,
        "pool": args.pool,
        "labels": labels,
        "output_root": run.output_root,
        "overview": answer.get("overview"),
        "warnings": answer.get("warnings") or [],
        "note": note,
    }
    ctx.say(
        f"submitted {name} as {wid} (pool {args.pool or 'default'}); outputs: {run.output_root}/runs/{name}/"
        if run.output_root
        else f"submitted {name} as {wid}"
    )
    for warning in answer.get("warnings") or []:
        ctx.say(f"  osmo warning: {warning}")
    return 0, body


def cmd_submit(ctx: Ctx, args: argparse.Namespace) -> int:
    if args.sweep:
        return submit_sweep(ctx, args)
    if args.max_inflight is not None:
        raise UsageError("--max-inflight goes with --sweep DIR")
    code, body = submit_one(ctx, _compiled_input(args.target), args)
    if ctx.json:
        print(json.dumps(body, indent=2), file=ctx.out)
    elif code == 0:
        ctx.say(f"watch: dig watch {body['run']}")
    return code


def submit_sweep(ctx: Ctx, args: argparse.Namespace) -> int:
    from dig_runs.compiled import read_compiled
    from dig_runs.watch import Watcher, WatchState, base_interval

    if args.target:
        raise UsageError("--sweep DIR takes no overrides or FILE")
    sweep_dir = Path(args.sweep)
    index_path = sweep_dir / "sweep.json"
    try:
        index = json.loads(index_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"--sweep {sweep_dir}: cannot read sweep.json: {exc}") from None
    sweep_id = str(index["sweep_id"])
    limit = args.max_inflight or 4
    if limit < 1:
        raise UsageError(f"--max-inflight must be >= 1, got {limit}")
    variants = [r for r in index["results"] if r.get("file")]
    for bad in (r for r in index["results"] if not r.get("file")):
        ctx.say(f"skipped (did not compile): {' '.join(bad['overrides'])}")
    recorded = {r.variant: r for r in ctx.store.list(sweep=sweep_id)}
    for run in list(recorded.values()):
        if run.record_state == SUBMITTING and not _alive(run.submitter):
            resolve_one(ctx, run)
    recorded = {r.variant: r for r in ctx.store.list(sweep=sweep_id)}
    todo = [
        v for v in variants if v["file"] not in recorded or recorded[v["file"]].record_state == NOT_SUBMITTED
    ]
    done = len(variants) - len(todo)
    stuck = [r for r in recorded.values() if r.record_state in (SUBMIT_FAILED, UNRESOLVED)]
    for r in stuck:  # never resubmitted on their own: OSMO refused them, or they may be live unlabelled
        ctx.say(
            f"not resubmitted: {r.variant} ({r.record_state}: {r.note or ''}); see `dig runs --sweep {sweep_id}`"
        )
    ctx.say(
        f"sweep {sweep_id}: {len(variants)} variants, {done} already submitted, {len(todo)} to submit, "
        f"at most {limit} in flight"
    )
    if not todo:
        return 0
    watcher = Watcher(ctx.osmo, ctx.store, clock=ctx.clock, out=sys.stderr)
    states = [
        WatchState(r.run_name, r.workflow_id, 0.0, status=r.last_status)
        for r in recorded.values()
        if r.record_state == SUBMITTED and not sig.is_terminal(r.terminal_state)
    ]
    first = True
    interval = args.interval
    submitted: list[dict[str, Any]] = []
    for variant in todo:
        path = sweep_dir / variant["file"]
        text = path.read_text(encoding="utf-8")
        import hashlib

        if variant.get("sha256") and hashlib.sha256(text.encode()).hexdigest() != variant["sha256"]:
            raise UsageError(f"{path}: its sha256 differs from sweep.json (edited after the sweep compiled?)")
        if interval is None:
            interval = base_interval(text)
        if first:
            _confirm(f"submit {len(todo)} workflows of sweep {sweep_id}?", args.yes)
        old = recorded.get(variant["file"])
        if old is not None and old.record_state == NOT_SUBMITTED:
            ctx.store.forget(old.run_name)
        watcher.watch_many(
            states, interval=interval, until=lambda: sum(not s.terminal for s in states) < limit
        )
        inp = Input(path, text, None, list(variant["overrides"]), {})
        run = read_compiled(text, str(path))
        inp.key = _key_of_variant(variant["file"], run)
        code, body = submit_one(ctx, inp, args, sweep=sweep_id, variant=variant["file"], check=first)
        if code != 0:
            ctx.say(f"sweep {sweep_id}: stopped at {variant['file']} (exit {code}); re-run to resume")
            return code
        first = False
        submitted.append(body)
        states.append(WatchState(body["run"], body["workflow_id"], interval))
    ctx.say(f"sweep {sweep_id}: all {len(variants)} variants submitted; watch: dig watch --sweep {sweep_id}")
    if ctx.json:
        print(json.dumps({"sweep_id": sweep_id, "submitted": submitted}, indent=2), file=ctx.out)
    return 0


def _key_of_variant(file: str, run: Any) -> str:
    # sweep variant files are <compile key with / as __>__<10-hex digest>.yaml (compiler/sweep.py)
    stem = file[:-5] if file.endswith(".yaml") else file
    stem = re.sub(r"__[0-9a-f]{10}$", "", stem)
    flow, _, rest = stem.partition("__")
    return f"{flow}/{rest}" if rest else stem


# ----------------------------------------------------------------------------- runs / watch


def _find(ctx: Ctx, ref: str) -> Any:
    run = ctx.store.get(ref)
    if run is None:
        raise UsageError(f"no run or workflow id {ref!r} in the record ({ctx.store.path}); see `dig runs`")
    if not run.workflow_id:
        raise UsageError(
            f"run {run.run_name} has no workflow id (record state {run.record_state}: {run.note or ''})"
        )
    return run


RUNS_JSON = (
    "run_name",
    "workflow_id",
    "record_state",
    "compile_key",
    "flow",
    "usecase",
    "board",
    "pool",
    "submit_time",
    "last_status",
    "last_status_time",
    "terminal_state",
    "output_root",
    "sweep_id",
    "variant",
    "sha256",
)
RUNS_TABLE = (
    "run_name",
    "workflow_id",
    "flow",
    "usecase",
    "board",
    "compile_key",
    "pool",
    "strftime('%Y-%m-%d %H:%M', submit_time, 'unixepoch', 'localtime')",
    "record_state",
    "last_status",
    "output_root",
)


def cmd_runs(ctx: Ctx, args: argparse.Namespace) -> int:
    if ctx.json:
        rows = ctx.store.rows(RUNS_JSON, status=args.status, sweep=args.sweep, limit=args.limit)
        # one run per line; no indent keeps json on its C encoder (10,000 runs in a few tens of ms)
        body = ",\n".join(json.dumps(dict(zip(RUNS_JSON, r, strict=True))) for r in rows)
        ctx.out.write(f"[\n{body}\n]\n" if rows else "[]\n")
        return 0
    rows = ctx.store.rows(RUNS_TABLE, status=args.status, sweep=args.sweep, limit=args.limit)
    fmt = "%-50s %-40s %-34s %-12s %-16s %-20s %s"
    lines = [fmt % ("RUN", "WORKFLOW ID", "FLOW/USECASE/BOARD", "POOL", "SUBMITTED", "STATUS", "OUTPUT ROOT")]
    for name, wid, flow, usecase, board, key, pool, when, state, status, root in rows:
        what = "/".join(x for x in (flow, usecase, board) if x) or key or "-"
        lines.append(
            fmt
            % (
                name,
                wid or "-",
                what,
                pool or "-",
                when or "-",
                (status if state == SUBMITTED else state) or "-",
                root or "-",
            )
        )
    ctx.out.write("\n".join(lines) + "\n")
    if not rows:
        ctx.say(f"no runs recorded in {ctx.store.path}")
    return 0


def cmd_watch(ctx: Ctx, args: argparse.Namespace) -> int:
    from dig_runs.watch import Watcher, WatchState, base_interval

    if args.interval is not None and args.interval <= 0:
        raise UsageError(f"--interval must be > 0 seconds, got {args.interval}")
    if args.sweep:
        return watch_sweep(ctx, args)
    if not args.ref:
        raise UsageError("watch: give RUN or a workflow id, or --sweep ID")
    run = ctx.store.get(args.ref)
    if run is not None and not run.workflow_id:
        raise UsageError(f"run {run.run_name} has no workflow id (record state {run.record_state})")
    name, wid = (run.run_name, run.workflow_id) if run else (args.ref, args.ref)
    text = ctx.store.compiled(run.run_name).decode() if run else None
    base = args.interval or base_interval(text)
    out = sys.stderr if ctx.json else ctx.out
    watcher = Watcher(ctx.osmo, ctx.store if run else None, clock=ctx.clock, out=out)
    state = WatchState(name, wid, base)
    ctx.say(
        f"watching {name} ({wid}) every {base:g} s, backing off to 60 s while nothing changes; "
        "Ctrl-C stops watching (nothing is canceled)"
    )
    try:
        code = watcher.watch(state)
    except KeyboardInterrupt:
        ctx.say("stopped watching; the run goes on")
        return sig.EXIT_INTERRUPTED
    if ctx.json:
        print(
            json.dumps(
                {
                    "run": name,
                    "workflow_id": wid,
                    "status": state.status,
                    "class": sig.terminal_class(str(state.status))[0],
                    "exit_code": code,
                    "polls": state.polls,
                    "poll_errors": state.errors,
                    "failures": [f.to_dict() for f in state.failures],
                },
                indent=2,
            ),
            file=ctx.out,
        )
    return code


def watch_sweep(ctx: Ctx, args: argparse.Namespace) -> int:
    from collections import Counter

    from dig_runs.watch import Watcher, WatchState, base_interval, sweep_exit

    runs = [r for r in ctx.store.list(sweep=args.sweep) if r.workflow_id]
    if not runs:
        raise UsageError(f"no submitted runs of sweep {args.sweep!r} in the record")
    interval = args.interval or base_interval(ctx.store.compiled(runs[0].run_name).decode())
    out = sys.stderr if ctx.json else ctx.out
    tty = out.isatty()
    watcher = Watcher(ctx.osmo, ctx.store, clock=ctx.clock, out=out, tty=False)
    states = [WatchState(r.run_name, r.workflow_id, interval, status=r.terminal_state) for r in runs]
    last = [""]

    def render() -> None:
        counts = Counter(s.status or "UNKNOWN" for s in states)
        line = f"sweep {args.sweep}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
        if tty:
            print("\x1b[H\x1b[2J" + line, file=out, flush=True)
            for s in states:
                print(f"  {s.run_name:<50} {s.workflow_id:<40} {s.status}", file=out)
        elif line != last[0]:
            print(line, file=out, flush=True)
        last[0] = line

    try:
        watcher.watch_many(states, interval=interval, render=render)
    except KeyboardInterrupt:
        ctx.say("stopped watching; the runs go on")
        return sig.EXIT_INTERRUPTED
    render()
    failures = [(s, f) for s in states for f in s.failures]
    for s, f in failures:
        ctx.say(f"{s.run_name} ({s.workflow_id}): {s.status}")
        for line in f.lines():
            ctx.say(line)
    code = sweep_exit(states)
    if ctx.json:
        print(
            json.dumps(
                {
                    "sweep_id": args.sweep,
                    "counts": Counter(s.status for s in states),
                    "exit_code": code,
                    "runs": [
                        {
                            "run": s.run_name,
                            "workflow_id": s.workflow_id,
                            "status": s.status,
                            "failures": [f.to_dict() for f in s.failures],
                        }
                        for s in states
                    ],
                },
                indent=2,
            ),
            file=ctx.out,
        )
    return code


# ----------------------------------------------------------------------------- logs / cancel / restart


def cmd_logs(ctx: Ctx, args: argparse.Namespace) -> int:
    if args.error and not args.task:
        raise UsageError("--error needs --task T (osmo workflow logs --error works per task)")
    run = _find(ctx, args.ref)
    res = ctx.osmo.logs(run.workflow_id, task=args.task, lines=args.lines, error=args.error)
    if ctx.json:
        print(
            json.dumps(
                {
                    "run": run.run_name,
                    "workflow_id": run.workflow_id,
                    "task": args.task,
                    "exit_code": res.rc,
                    "log": res.stdout,
                }
            ),
            file=ctx.out,
        )
    else:
        ctx.out.write(res.stdout)
    if res.rc:
        print(res.stderr.strip() or f"osmo workflow logs exited {res.rc}", file=sys.stderr)
    return res.rc


def cmd_cancel(ctx: Ctx, args: argparse.Namespace) -> int:
    from dig_runs.watch import tasks_of

    run = _find(ctx, args.ref)
    doc = ctx.osmo.query(run.workflow_id)
    status = str(doc.get("status"))
    if sig.is_terminal(status):
        ctx.say(f"{run.run_name} ({run.workflow_id}) is already {status}: nothing to cancel")
        return 1
    running = [(k, t.get("pod_name")) for k, t in tasks_of(doc).items() if t.get("status") == "RUNNING"]
    for key, pod in running:
        ctx.say(f"task {key}: its pod {pod or ''} is RUNNING; canceling stops it and loses its work so far")
    _confirm(f"cancel {run.run_name} ({run.workflow_id}, {status})?", args.yes)
    answer = ctx.osmo.cancel(run.workflow_id)
    ctx.store.observe(run.run_name, "CANCEL_REQUESTED", detail={"running_tasks": [k for k, _ in running]})
    ctx.say(
        f"cancel requested for {answer.get('name', run.workflow_id)}; `dig watch {run.run_name}` shows the end"
    )
    if ctx.json:
        print(
            json.dumps(
                {
                    "run": run.run_name,
                    "workflow_id": run.workflow_id,
                    "canceled": True,
                    "running_tasks": [k for k, _ in running],
                }
            ),
            file=ctx.out,
        )
    return 0


def cmd_restart(ctx: Ctx, args: argparse.Namespace) -> int:
    run = _find(ctx, args.ref)
    status = str(ctx.osmo.query(run.workflow_id).get("status"))
    if not status.startswith("FAILED") or status == "FAILED_SUBMISSION":
        ctx.say(f"{run.run_name} ({run.workflow_id}) is {status}: OSMO restarts failed workflows only")
        return 1
    answer = ctx.osmo.restart(run.workflow_id)
    wid = workflow_id_of(answer) or run.workflow_id
    ctx.store.set_workflow_id(run.run_name, wid)
    ctx.store.observe(run.run_name, "RESTARTED", detail={"from": run.workflow_id, "workflow_id": wid})
    ctx.say(f"restarted {run.run_name}: failed groups re-run as {wid}; dig watch {run.run_name}")
    if ctx.json:
        print(
            json.dumps({"run": run.run_name, "workflow_id": wid, "previous": run.workflow_id}), file=ctx.out
        )
    return 0


# ----------------------------------------------------------------------------- fetch


def cmd_fetch(ctx: Ctx, args: argparse.Namespace) -> int:
    from dig_runs.store import db_path

    run = _find(ctx, args.ref)
    if not run.output_root:
        raise UsageError(
            f"run {run.run_name} has no output root in its compiled workflow (setup flows write fixed paths)"
        )
    wf = db_path().parent / "workflows" / f"{run.run_name}.yaml"
    wf.parent.mkdir(parents=True, exist_ok=True)
    wf.write_bytes(ctx.store.compiled(run.run_name))
    base = [sys.executable, "-m", "dig_outputs"]
    src = ["--workflow", str(wf), "--root", run.output_root, "--name", run.run_name]
    jobs = []
    if args.download or not args.preview:
        cmd = [*base, "download", *src, "--workflow-id", run.workflow_id]
        if args.dest:
            cmd += ["--dest", args.dest]
        if run.terminal_state != "COMPLETED":
            cmd.append("--allow-missing")
            ctx.say(
                f"note: {run.run_name} is {run.terminal_state or run.last_status}: downloading what exists"
            )
        jobs.append(("download", cmd))
    if args.preview:
        cmd = [*base, "preview", *src]
        if args.dest:
            cmd += ["--dest", str(Path(args.dest) / "preview")]
        jobs.append(("preview", cmd))
    results = {}
    for what, cmd in jobs:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        sys.stderr.write(proc.stderr)
        if proc.returncode:
            ctx.say(f"fetch {what}: dig-outputs exited {proc.returncode}")
            return proc.returncode
        results[what] = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
        ctx.say(f"{what}: {results[what]}")
    if ctx.json:
        print(json.dumps({"run": run.run_name, **results}), file=ctx.out)
    return 0


# ----------------------------------------------------------------------------- endpoint


def cmd_endpoint(ctx: Ctx, args: argparse.Namespace) -> int:
    from dig_runs import endpoint

    if args.action == "manifest":
        try:
            text = endpoint.manifest_text(args.option)
        except (ValueError, OSError) as exc:
            raise UsageError(str(exc)) from None
        if args.out:
            from compiler.pipeline import write_atomic

            write_atomic(Path(args.out), text)
            ctx.say(f"wrote {args.out}")
        else:
            ctx.out.write(text)
        return 0
    url = args.url or endpoint.endpoint_group("cluster")["url"]
    res = endpoint.check(url, timeout=args.timeout)
    if ctx.json:
        print(json.dumps(res.to_dict(), indent=2), file=ctx.out)
    else:
        ctx.out.write(f"{'OK' if res.ok else 'FAIL'} {res.url}: {res.message}\n")
    return 0 if res.ok else (1 if res.reachable else 3)


# ----------------------------------------------------------------------------- parser / main


def build_parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    p = argparse.ArgumentParser(
        prog="dig", description=__doc__, formatter_class=fmt, epilog=SUBMIT_EXITS + "\n\n" + WATCH_EXITS
    )
    sub = p.add_subparsers(dest="verb", required=True)

    def verb(name: str, help_: str, epilog: str | None = None) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help_, epilog=epilog, formatter_class=fmt)
        sp.add_argument("--json", action="store_true", help="one JSON document on stdout")
        return sp

    s = verb(
        "submit",
        "compile (or take a compiled file), preflight, stamp a run name, submit, record",
        SUBMIT_EXITS,
    )
    s.add_argument("target", nargs="*", help="key=value overrides, or one compiled FILE")
    s.add_argument("--pool", "-p", help="OSMO pool")
    s.add_argument("--priority", choices=("LOW", "NORMAL", "HIGH"))
    s.add_argument("--skip-preflight", action="store_true", help="submit even when a preflight fails")
    s.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    s.add_argument(
        "--sweep", metavar="DIR", help="a compiled sweep (build/sweeps/<id>): one workflow per variant"
    )
    s.add_argument("--max-inflight", type=int, help="sweep: at most N workflows live at once (default 4)")
    s.add_argument("--interval", type=float, help="sweep: seconds between polls while at the in-flight limit")

    r = verb("runs", "the runs this user submitted")
    r.add_argument("--status", help="only runs whose last known status (or record state) is S")
    r.add_argument("--sweep", help="only the runs of this sweep id")
    r.add_argument("--limit", type=int)

    w = verb("watch", "poll a run (or a sweep) to its end; exit code says how it ended", WATCH_EXITS)
    w.add_argument("ref", nargs="?", metavar="RUN|ID")
    w.add_argument("--sweep", help="watch every workflow of a sweep as one table")
    w.add_argument("--interval", type=float, help="seconds between polls (default 30 for GPU work, else 15)")

    lg = verb("logs", "a run's logs (osmo workflow logs)")
    lg.add_argument("ref", metavar="RUN|ID")
    lg.add_argument("--task", "-t")
    lg.add_argument("-n", dest="lines", type=int)
    lg.add_argument("--error", action="store_true", help="the task's error log (needs --task)")

    c = verb("cancel", "cancel a run (asks first)")
    c.add_argument("ref", metavar="RUN|ID")
    c.add_argument("--yes", "-y", action="store_true")

    rs = verb("restart", "re-run the failed groups of a failed run")
    rs.add_argument("ref", metavar="RUN|ID")

    f = verb("fetch", "dig-outputs on a run, from its recorded compiled workflow")
    f.add_argument("ref", metavar="RUN|ID")
    f.add_argument("--preview", action="store_true")
    f.add_argument("--download", action="store_true", help="(the default when --preview is not given)")
    f.add_argument("--dest")

    e = verb("endpoint", "the in-cluster image-edit endpoint")
    e.add_argument("action", choices=("manifest", "check"))
    e.add_argument("url", nargs="?", help="check: base URL (default: conf/endpoint/cluster.yaml url)")
    e.add_argument("--option", default="cluster", help="manifest: endpoint group option (default cluster)")
    e.add_argument("--out", help="manifest: write here instead of stdout")
    e.add_argument("--timeout", type=float, default=10.0)
    return p


HANDLERS = {
    "submit": cmd_submit,
    "runs": cmd_runs,
    "watch": cmd_watch,
    "logs": cmd_logs,
    "cancel": cmd_cancel,
    "restart": cmd_restart,
    "fetch": cmd_fetch,
    "endpoint": cmd_endpoint,
}


def main(
    argv: list[str] | None = None, *, osmo: Osmo | None = None, clock: Clock | None = None, out: Any = None
) -> int:
    """Entry point; argv starts with the verb. `osmo`/`clock` are for tests (a runner, a simulated clock)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    out = out or sys.stdout
    store = None
    try:
        if args.verb == "endpoint":
            store = None
            return cmd_endpoint(Ctx(None, None, clock or Clock(), out, args.json), args)  # type: ignore[arg-type]
        store = Store()
        ctx = Ctx(store, osmo or Osmo(), clock or Clock(), out, args.json)
        resolve_pending(ctx)
        return HANDLERS[args.verb](ctx, args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OsmoMissing as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 4
    except OsmoError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 4
    except KeyboardInterrupt:
        return sig.EXIT_INTERRUPTED
    finally:
        if store is not None:
            store.close()


if __name__ == "__main__":
    sys.exit(main())
