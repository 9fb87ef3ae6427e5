"""`dig watch RUN|ID` and `dig watch --sweep ID`: poll to the end; the exit code says how it ended."""

from __future__ import annotations

import argparse
import json
import sys

from dig_runs import signatures as sig
from dig_runs.cli_context import Ctx, UsageError


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
