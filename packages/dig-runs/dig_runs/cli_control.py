"""`dig logs`, `dig cancel`, `dig restart`: one OSMO call on a recorded run."""

from __future__ import annotations

import argparse
import json
import sys

from dig_runs import signatures as sig
from dig_runs.cli_context import Ctx, UsageError, confirm, find_run
from dig_runs.osmo import workflow_id_of


def cmd_logs(ctx: Ctx, args: argparse.Namespace) -> int:
    if args.error and not args.task:
        raise UsageError("--error needs --task T (osmo workflow logs --error works per task)")
    run = find_run(ctx, args.ref)
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

    run = find_run(ctx, args.ref)
    doc = ctx.osmo.query(run.workflow_id)
    status = str(doc.get("status"))
    if sig.is_terminal(status):
        ctx.say(f"{run.run_name} ({run.workflow_id}) is already {status}: nothing to cancel")
        return 1
    running = [(k, t.get("pod_name")) for k, t in tasks_of(doc).items() if t.get("status") == "RUNNING"]
    for key, pod in running:
        ctx.say(f"task {key}: its pod {pod or ''} is RUNNING; canceling stops it and loses its work so far")
    confirm(f"cancel {run.run_name} ({run.workflow_id}, {status})?", args.yes)
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
    run = find_run(ctx, args.ref)
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
