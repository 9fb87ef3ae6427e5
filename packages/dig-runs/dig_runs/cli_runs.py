"""`dig runs`: the runs this user submitted, as a table or JSON (read from the record alone)."""

from __future__ import annotations

import argparse
import json

from dig_runs.cli_context import Ctx
from dig_runs.store import SUBMITTED

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
