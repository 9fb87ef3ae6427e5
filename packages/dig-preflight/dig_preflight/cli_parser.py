"""`python -m dig_preflight`'s argument parser: one sub-parser per check, argument types that refuse bad values."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

MAX_ATTEMPTS = 20
STORAGE_EXITS = """exit codes (urls, workflow):
  0  every required artifact present (and runs/<name>/ free)
  1  something is missing, empty, malformed or would be overwritten (incl. a missing bucket)
  2  usage error (a request the compiler refuses, bad arguments, unreadable or non-workflow YAML)
  3  storage could not be read: access denied, endpoint unreachable, throttled / 5xx after retries"""
CRED_EXITS = """exit codes (credentials):
  0  HF token well-formed and OSMO hf-token present (or osmo CLI absent: OSMO check skipped)
  1  token missing/malformed, or OSMO credential missing/incomplete
  2  usage error
  4  the osmo CLI failed (not logged in, non-JSON output)"""
POD_EXITS = """exit codes (pod-template):
  0  verified: nvoptix hostPath + /dev/shm >= N GiB
  1  needs patch (the patch is printed; applying it needs the user's approval)
  2  forbidden (HTTP 403): ask the user whether the admin configured it; otherwise contact the admin
  3  conflict (HTTP 409, config CLI disabled): gate skipped, in-pod checks remain
  4  environment problem: osmo missing, unreadable/non-JSON template, bad arguments"""


def _endpoint_url(value: str) -> str:
    """An http(s) URL with a host and a valid port: what botocore can talk S3 to."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(value)
        port = parts.port  # raises ValueError for a port outside 0..65535
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a URL ({exc}): {value!r}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise argparse.ArgumentTypeError(f"must be an http:// or https:// URL with a host, got {value!r}")
    if port == 0:
        raise argparse.ArgumentTypeError(f"port must be 1-65535, got {value!r}")
    return value


def _attempts(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be an integer from 1 to {MAX_ATTEMPTS}, got {value!r}"
        ) from None
    if not 1 <= n <= MAX_ATTEMPTS:
        raise argparse.ArgumentTypeError(f"must be an integer from 1 to {MAX_ATTEMPTS}, got {value!r}")
    return n


def _run_name(value: str) -> str:
    """The compiler's own run-name rule (compiler.knobs.RUN_NAME), so preflight and compile agree."""
    import re

    from compiler.knobs import RUN_NAME, pattern_hint

    if len(value) > 64 or not re.fullmatch(RUN_NAME, value):
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a run name the compiler accepts: {pattern_hint(RUN_NAME)}"
        )
    return value


def _add_s3_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("storage access (defaults from AWS_* environment variables)")
    g.add_argument(
        "--endpoint-url",
        type=_endpoint_url,
        help="S3 endpoint, e.g. http://localhost:30090 (AWS_ENDPOINT_URL)",
    )
    g.add_argument("--profile", help="AWS profile (AWS_PROFILE)")
    g.add_argument("--region", help="region (AWS_REGION / AWS_DEFAULT_REGION; default us-east-1)")
    g.add_argument(
        "--max-attempts",
        type=_attempts,
        help=f"total attempts per request incl. retries, 1-{MAX_ATTEMPTS} (AWS_MAX_ATTEMPTS; 4)",
    )


def build_parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="python -m dig_preflight",
        description="Pre-submit checks for DIG runs. Read-only: nothing is ever written to storage.",
        epilog="\n\n".join([STORAGE_EXITS, CRED_EXITS, POD_EXITS]),
        formatter_class=fmt,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_add_urls, _add_workflow, _add_credentials, _add_pod_template):
        add(sub, fmt)
    return parser


def _add_urls(sub: Any, fmt: type[argparse.HelpFormatter]) -> None:
    u = sub.add_parser(
        "urls",
        help="compile a request, then check what the compiled workflow reads (shortcut for `workflow`)",
        epilog=STORAGE_EXITS,
        formatter_class=fmt,
        description="Compiles flow=FLOW usecase=USECASE [board=BOARD] [OVERRIDE ...] in memory with the compiler "
        "(nothing is written) and checks the compiled workflow exactly as `workflow FILE` does.",
    )
    u.add_argument("--flow", required=True, help="flow (a conf/flow option: day0, day1, ...)")
    u.add_argument("--usecase", default="pcb", help="use case (a conf/usecase option; default pcb)")
    u.add_argument("--board", help="board (a conf/board option; default: the use case's)")
    u.add_argument(
        "--root", help="dig_url_root (default: DIG_URL_ROOT, else the compiler's preference/suggestion)"
    )
    u.add_argument("--name", type=_run_name, help="run name: runs/<name>/ must not exist yet")
    u.add_argument(
        "overrides",
        nargs="*",
        metavar="KEY=VALUE",
        help="compiler overrides, e.g. knobs.use_usd2roi_day1=false knobs.checkpoint_step=13000",
    )
    u.add_argument("--json", action="store_true", help="JSON report on stdout")
    _add_s3_args(u)


def _add_workflow(sub: Any, fmt: type[argparse.HelpFormatter]) -> None:
    w = sub.add_parser(
        "workflow",
        help="check every URL input, output run and credential of a compiled workflow",
        epilog=STORAGE_EXITS,
        formatter_class=fmt,
    )
    w.add_argument("file", type=Path, help="compiled workflow YAML")
    w.add_argument("--name", type=_run_name, help="run name to check when the YAML still holds {{ name }}")
    w.add_argument("--no-osmo", action="store_true", help="skip the OSMO credential lookup")
    w.add_argument("--json", action="store_true")
    _add_s3_args(w)


def _add_credentials(sub: Any, fmt: type[argparse.HelpFormatter]) -> None:
    c = sub.add_parser(
        "credentials", help="HF token + OSMO hf-token credential", epilog=CRED_EXITS, formatter_class=fmt
    )
    c.add_argument("--no-osmo", action="store_true", help="skip the OSMO credential lookup")
    c.add_argument("--json", action="store_true")


def _add_pod_template(sub: Any, fmt: type[argparse.HelpFormatter]) -> None:
    p = sub.add_parser(
        "pod-template",
        help="OSMO POD_TEMPLATE: nvoptix mount and /dev/shm size",
        epilog=POD_EXITS,
        formatter_class=fmt,
    )
    p.add_argument("--file", type=Path, help="template JSON/YAML instead of `osmo config show POD_TEMPLATE`")
    p.add_argument(
        "--min-dshm-gib", type=int, default=16, help="minimum /dev/shm in GiB (default 16; 32 preferred)"
    )
    p.add_argument(
        "--template-name", default="default_user", help="pod template to inspect (default default_user)"
    )
    p.add_argument(
        "--checks",
        choices=("render", "train"),
        default="render",
        help="render: nvoptix mount + /dev/shm (Kit render pods, the default); train: /dev/shm only",
    )
    p.add_argument("--json", action="store_true")
