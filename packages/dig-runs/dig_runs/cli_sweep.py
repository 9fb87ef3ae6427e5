"""`dig submit --sweep DIR`: one workflow per compiled variant, at most N in flight, resumable."""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dig_runs import signatures as sig
from dig_runs.cli_context import Ctx, UsageError, confirm
from dig_runs.cli_submit import Input, submit_one
from dig_runs.recovery import alive, resolve_one
from dig_runs.store import NOT_SUBMITTED, SUBMIT_FAILED, SUBMITTED, SUBMITTING, UNRESOLVED
from dig_runs.watch import Watcher, WatchState


@dataclass
class _Sweep:
    dir: Path
    id: str
    limit: int  # at most this many workflows live at once
    variants: list[dict[str, Any]]  # sweep.json results that compiled
    recorded: dict[str, Any]  # variant file -> its run in the record
    todo: list[dict[str, Any]]  # variants to submit (never submitted, or not reached OSMO)


def submit_sweep(ctx: Ctx, args: argparse.Namespace) -> int:
    sw = _load_sweep(ctx, args)
    if not sw.todo:
        return 0
    watcher = Watcher(ctx.osmo, ctx.store, clock=ctx.clock, out=sys.stderr)
    states = [
        WatchState(r.run_name, r.workflow_id, 0.0, status=r.last_status)
        for r in sw.recorded.values()
        if r.record_state == SUBMITTED and not sig.is_terminal(r.terminal_state)
    ]
    code, submitted = _submit_todo(ctx, args, sw, watcher, states)
    if code != 0:
        return code
    ctx.say(f"sweep {sw.id}: all {len(sw.variants)} variants submitted; watch: dig watch --sweep {sw.id}")
    if ctx.json:
        print(json.dumps({"sweep_id": sw.id, "submitted": submitted}, indent=2), file=ctx.out)
    return 0


def _load_sweep(ctx: Ctx, args: argparse.Namespace) -> _Sweep:
    """Read sweep.json, resolve interrupted submits of the sweep, say what is done and what is to do."""
    if args.target:
        raise UsageError("--sweep DIR takes no overrides or FILE")
    sweep_dir = Path(args.sweep)
    try:
        index = json.loads((sweep_dir / "sweep.json").read_text(encoding="utf-8"))
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
        if run.record_state == SUBMITTING and not alive(run.submitter):
            resolve_one(ctx, run)
    recorded = {r.variant: r for r in ctx.store.list(sweep=sweep_id)}
    todo = [
        v for v in variants if v["file"] not in recorded or recorded[v["file"]].record_state == NOT_SUBMITTED
    ]
    for r in recorded.values():
        if r.record_state in (SUBMIT_FAILED, UNRESOLVED):
            # never resubmitted on their own: OSMO refused them, or they may be live unlabelled
            ctx.say(
                f"not resubmitted: {r.variant} ({r.record_state}: {r.note or ''}); see `dig runs --sweep {sweep_id}`"
            )
    ctx.say(
        f"sweep {sweep_id}: {len(variants)} variants, {len(variants) - len(todo)} already submitted, "
        f"{len(todo)} to submit, at most {limit} in flight"
    )
    return _Sweep(sweep_dir, sweep_id, limit, variants, recorded, todo)


def _submit_todo(
    ctx: Ctx, args: argparse.Namespace, sw: _Sweep, watcher: Watcher, states: list[WatchState]
) -> tuple[int, list[dict[str, Any]]]:
    """Submit sw.todo in order, waiting while sw.limit workflows are live; stops at the first failure."""
    from dig_runs.compiled import read_compiled
    from dig_runs.watch import base_interval

    first = True
    interval = args.interval
    submitted: list[dict[str, Any]] = []
    for variant in sw.todo:
        path = sw.dir / variant["file"]
        text = path.read_text(encoding="utf-8")
        if variant.get("sha256") and hashlib.sha256(text.encode()).hexdigest() != variant["sha256"]:
            raise UsageError(f"{path}: its sha256 differs from sweep.json (edited after the sweep compiled?)")
        if interval is None:
            interval = base_interval(text)
        if first:
            confirm(f"submit {len(sw.todo)} workflows of sweep {sw.id}?", args.yes)
        old = sw.recorded.get(variant["file"])
        if old is not None and old.record_state == NOT_SUBMITTED:
            ctx.store.forget(old.run_name)
        watcher.watch_many(
            states, interval=interval, until=lambda: sum(not s.terminal for s in states) < sw.limit
        )
        inp = Input(path, text, None, list(variant["overrides"]), {})
        inp.key = key_of_variant(variant["file"], read_compiled(text, str(path)))
        code, body = submit_one(ctx, inp, args, sweep=sw.id, variant=variant["file"], check=first)
        if code != 0:
            ctx.say(f"sweep {sw.id}: stopped at {variant['file']} (exit {code}); re-run to resume")
            return code, submitted
        first = False
        submitted.append(body)
        states.append(WatchState(body["run"], body["workflow_id"], interval))
    return 0, submitted


def key_of_variant(file: str, run: Any) -> str:
    # sweep variant files are <compile key with / as __>__<10-hex digest>.yaml (compiler/sweep.py)
    stem = file[:-5] if file.endswith(".yaml") else file
    stem = re.sub(r"__[0-9a-f]{10}$", "", stem)
    flow, _, rest = stem.partition("__")
    return f"{flow}/{rest}" if rest else stem
