"""What every `dig` verb handler gets (the record, osmo, a clock, where to print) and the helpers they share."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

from dig_runs.osmo import Osmo
from dig_runs.store import Store
from dig_runs.watch import Clock


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


def confirm(question: str, yes: bool) -> None:
    if yes:
        return
    if not sys.stdin.isatty():
        raise UsageError(f"{question} needs confirmation: not a terminal, pass --yes")
    if input(f"{question} [y/N] ").strip().lower() not in ("y", "yes"):
        raise UsageError("not confirmed")


def find_run(ctx: Ctx, ref: str) -> Any:
    """The recorded run named `ref` (a run name or a workflow id); it must have reached OSMO."""
    run = ctx.store.get(ref)
    if run is None:
        raise UsageError(f"no run or workflow id {ref!r} in the record ({ctx.store.path}); see `dig runs`")
    if not run.workflow_id:
        raise UsageError(
            f"run {run.run_name} has no workflow id (record state {run.record_state}: {run.note or ''})"
        )
    return run
