"""The `dig` runs verbs' argument parser: one function per verb, the exit-code tables in the help."""

from __future__ import annotations

import argparse
from collections.abc import Callable

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

Verb = Callable[..., argparse.ArgumentParser]  # verb(name, help, epilog=None) -> its subparser


def build_parser(description: str | None) -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    p = argparse.ArgumentParser(
        prog="dig", description=description, formatter_class=fmt, epilog=SUBMIT_EXITS + "\n\n" + WATCH_EXITS
    )
    sub = p.add_subparsers(dest="verb", required=True)

    def verb(name: str, help_: str, epilog: str | None = None) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help_, epilog=epilog, formatter_class=fmt)
        sp.add_argument("--json", action="store_true", help="one JSON document on stdout")
        return sp

    for add in (_submit, _runs, _watch, _run_verbs, _endpoint):
        add(verb)
    return p


def _submit(verb: Verb) -> None:
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


def _runs(verb: Verb) -> None:
    r = verb("runs", "the runs this user submitted")
    r.add_argument("--status", help="only runs whose last known status (or record state) is S")
    r.add_argument("--sweep", help="only the runs of this sweep id")
    r.add_argument("--limit", type=int)


def _watch(verb: Verb) -> None:
    w = verb("watch", "poll a run (or a sweep) to its end; exit code says how it ended", WATCH_EXITS)
    w.add_argument("ref", nargs="?", metavar="RUN|ID")
    w.add_argument("--sweep", help="watch every workflow of a sweep as one table")
    w.add_argument("--interval", type=float, help="seconds between polls (default 30 for GPU work, else 15)")


def _run_verbs(verb: Verb) -> None:
    """logs, cancel, restart, fetch: verbs on one recorded run."""
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


def _endpoint(verb: Verb) -> None:
    e = verb("endpoint", "the in-cluster image-edit endpoint")
    e.add_argument("action", choices=("manifest", "check"))
    e.add_argument("url", nargs="?", help="check: base URL (default: conf/endpoint/cluster.yaml url)")
    e.add_argument("--option", default="cluster", help="manifest: endpoint group option (default cluster)")
    e.add_argument("--out", help="manifest: write here instead of stdout")
    e.add_argument("--timeout", type=float, default=10.0)
