"""Crash recovery: rows left `submitting` by an interrupted submit are found in OSMO by label, never resubmitted."""

from __future__ import annotations

import os
import socket
from typing import Any

from dig_runs.cli_context import Ctx
from dig_runs.osmo import OsmoError, OsmoMissing
from dig_runs.store import NOT_SUBMITTED, SUBMITTED, SUBMITTING, UNRESOLVED


def alive(submitter: str | None) -> bool:
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
        if alive(run.submitter) and not include_own:
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
