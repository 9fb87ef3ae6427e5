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

import argparse
import sys
from typing import Any

from dig_runs import signatures as sig
from dig_runs.cli_context import Ctx, UsageError
from dig_runs.cli_control import cmd_cancel, cmd_logs, cmd_restart
from dig_runs.cli_endpoint import cmd_endpoint
from dig_runs.cli_fetch import cmd_fetch
from dig_runs.cli_parser import SUBMIT_EXITS, WATCH_EXITS
from dig_runs.cli_parser import build_parser as _build_parser
from dig_runs.cli_runs import cmd_runs
from dig_runs.cli_submit import cmd_submit, submit_one
from dig_runs.cli_sweep import submit_sweep
from dig_runs.cli_watch import cmd_watch
from dig_runs.osmo import Osmo, OsmoError, OsmoMissing
from dig_runs.recovery import resolve_one, resolve_pending
from dig_runs.store import Store
from dig_runs.watch import Clock

__all__ = [  # the verbs' handlers live in dig_runs.cli_<verb>; these names stay importable from here
    "HANDLERS",
    "SUBMIT_EXITS",
    "VERBS",
    "WATCH_EXITS",
    "Ctx",
    "UsageError",
    "build_parser",
    "main",
    "resolve_one",
    "resolve_pending",
    "submit_one",
    "submit_sweep",
]

VERBS = ("submit", "runs", "watch", "logs", "cancel", "restart", "fetch", "endpoint")
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


def build_parser() -> argparse.ArgumentParser:
    return _build_parser(__doc__)


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
