"""`dig fetch RUN`: dig-outputs (download, preview) on a run, from its recorded compiled workflow."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from dig_runs.cli_context import Ctx, UsageError, find_run


def cmd_fetch(ctx: Ctx, args: argparse.Namespace) -> int:
    from dig_runs.store import db_path

    run = find_run(ctx, args.ref)
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
