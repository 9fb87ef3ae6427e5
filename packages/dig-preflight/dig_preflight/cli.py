"""Command line: `python -m dig_preflight {urls,workflow,credentials,pod-template}`."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from .report import Report

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

    c = sub.add_parser(
        "credentials", help="HF token + OSMO hf-token credential", epilog=CRED_EXITS, formatter_class=fmt
    )
    c.add_argument("--no-osmo", action="store_true", help="skip the OSMO credential lookup")
    c.add_argument("--json", action="store_true")

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
    return parser


def _store(args: argparse.Namespace):
    from .s3 import S3Store

    return S3Store(
        endpoint_url=args.endpoint_url,
        profile=args.profile,
        region=args.region,
        max_attempts=args.max_attempts,
    )


def _emit(report: Report, as_json: bool) -> int:
    print(report.to_json() if as_json else report.to_table())
    return report.exit_code


def _usage(command: str, message: str, as_json: bool) -> int:
    report = Report(command, exit_code=2)
    report.add("arguments", "fail", "", message)
    if as_json:
        print(report.to_json())
    else:
        print(f"usage error: {message}", file=sys.stderr)
    return 2


def compile_for_urls(args: argparse.Namespace):
    """Compile the request with the compiler's own pipeline (in memory); the `Compiled` result."""
    from compiler.compose import parse_overrides
    from compiler.pipeline import compile_request
    from compiler.prefs import load_prefs

    for arg in (args.flow, args.usecase, args.board):
        if arg is not None and ("=" in arg or not arg):
            raise UsageError(f"--flow/--usecase/--board take an option name, got {arg!r}")
    overrides = [f"flow={args.flow}", f"usecase={args.usecase}"]
    if args.board is not None:
        overrides.append(f"board={args.board}")
    root = args.root or os.environ.get("DIG_URL_ROOT")
    if root:
        overrides.append(f"dig_url_root={root}")
    if args.name:
        overrides.append(f"name={args.name}")
    return compile_request(parse_overrides(overrides + list(args.overrides)), prefs=load_prefs())


class UsageError(ValueError):
    """Arguments that name no supported check (exit 2)."""


def cmd_urls(args: argparse.Namespace) -> int:
    import yaml

    from compiler.errors import DigError

    label = f"urls {args.flow} {args.usecase}"
    try:
        compiled = compile_for_urls(args)
    except (DigError, UsageError) as exc:
        return _usage(label, exc.format() if isinstance(exc, DigError) else str(exc), args.json)
    notes = [f"compiled {compiled.key}: " + " ".join(d.format().split()) for d in compiled.diagnostics]
    return check_workflow(
        label, yaml.safe_load(compiled.text), args, name=None, credentials=False, notes=notes
    )


def _read_workflow(path: Path):
    import yaml

    from .requirements import WorkflowError

    if not path.is_file():
        raise WorkflowError(f"{path}: not a regular file")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise WorkflowError(
            f"{path}: not UTF-8 text (byte {exc.start}): a compiled workflow is UTF-8 YAML"
        ) from None
    try:
        return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as exc:
        raise WorkflowError(f"{path}: not YAML: {str(exc).splitlines()[0]}") from None


def check_workflow(
    label: str,
    doc,
    args: argparse.Namespace,
    *,
    name: str | None,
    credentials: bool,
    notes: list[str] | None = None,
) -> int:
    """The one storage check: requirements(doc) against S3, plus the workflow's OSMO credentials."""
    from .credentials import check_osmo_credential, list_osmo_credentials
    from .osmo import osmo_path
    from .requirements import WorkflowError
    from .storage import StoragePreflight
    from .workflow import workflow_needs

    try:
        needs = workflow_needs(doc, name=name)
    except WorkflowError as exc:
        return _usage(label, str(exc), args.json)
    report = Report(label, notes=list(notes or []) + list(needs.notes))
    other = [a.url for a in needs.artifacts if not a.url.startswith("s3://")]
    if other:
        return _usage(
            label, f"this preflight reads s3:// storage only; the workflow reads {other[0]}", args.json
        )
    if needs.artifacts:
        try:
            store = _store(args)
        except ValueError as exc:  # e.g. AWS_MAX_ATTEMPTS=abc in the environment
            return _usage(label, str(exc), args.json)
        try:
            StoragePreflight(store, report).run(needs.artifacts)
        except Exception as exc:  # a StorageError raised outside a check (bad profile): say it, exit 3
            from .s3 import StorageError

            if not isinstance(exc, StorageError):
                raise
            report.add("storage", "error", "", exc.message, exc.hint)
            report.exit_code = 3
    else:
        report.notes.append(
            "the workflow reads nothing from storage and writes no runs/<name>/: nothing to check"
        )
    if credentials and needs.credentials:
        if args.no_osmo or osmo_path() is None:
            why = "--no-osmo" if args.no_osmo else "osmo CLI not on PATH"
            for cred, keys in sorted(needs.credentials.items()):
                report.add(
                    f"OSMO credential {cred}",
                    "skip",
                    f"keys {', '.join(sorted(keys)) or '-'}",
                    f"not checked ({why})",
                )
        else:
            entries, why = list_osmo_credentials()
            for cred, keys in sorted(needs.credentials.items()):
                if entries is None:
                    report.add(
                        f"OSMO credential {cred}",
                        "error",
                        "osmo credential list",
                        why,
                        "run `osmo login <url>`",
                    )
                else:
                    check_osmo_credential(
                        report,
                        entries,
                        cred,
                        keys,
                        f"osmo credential set {cred} --type GENERIC --payload "
                        + " ".join(f"{k}=..." for k in sorted(keys)),
                    )
        statuses = {c.status for c in report.checks}
        report.exit_code = 3 if "error" in statuses else 1 if "fail" in statuses else 0
    return _emit(report, args.json)


def cmd_workflow(args: argparse.Namespace) -> int:
    from .requirements import WorkflowError

    label = f"workflow {args.file}"
    try:
        doc = _read_workflow(args.file)
    except (OSError, WorkflowError) as exc:
        return _usage(label, str(exc), args.json)
    return check_workflow(label, doc, args, name=args.name, credentials=True)


def cmd_credentials(args: argparse.Namespace) -> int:
    from .credentials import check_credentials

    return _emit(check_credentials(Report("credentials"), use_osmo=not args.no_osmo), args.json)


def cmd_pod_template(args: argparse.Namespace) -> int:
    import yaml

    from .pod_template import EXIT_ENV, check_template, load_from_osmo

    report = Report("pod-template")
    if args.min_dshm_gib < 1:
        report.add("arguments", "fail", "", f"--min-dshm-gib must be >= 1, got {args.min_dshm_gib}")
        report.exit_code = EXIT_ENV
        return _emit(report, args.json)
    if args.file:
        try:
            doc = yaml.safe_load(args.file.read_bytes().decode("utf-8"))
        except (OSError, ValueError, yaml.YAMLError) as exc:  # ValueError: non-UTF-8, a NUL in the path
            report.add(
                "read POD_TEMPLATE", "fail", str(args.file), f"cannot read: {exc}", "pass a JSON/YAML file"
            )
            report.exit_code = EXIT_ENV
            return _emit(report, args.json)
    else:
        doc = load_from_osmo(report)
        if doc is None:
            return _emit(report, args.json)
    try:
        check_template(
            doc,
            report,
            min_dshm_gib=args.min_dshm_gib,
            name=args.template_name,
            nvoptix=args.checks == "render",
        )
    except ValueError as exc:
        report.add("read POD_TEMPLATE", "fail", "", str(exc), "check --template-name")
        report.exit_code = EXIT_ENV
    code = _emit(report, args.json)
    if code == 1 and not args.json:
        print(
            "\nPatch (review with the user first: it changes the cluster-wide POD_TEMPLATE; "
            "apply with `osmo config update POD_TEMPLATE`, then re-run this check):"
        )
        print(report.extra["patch"])
    return code


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler = {
        "urls": cmd_urls,
        "workflow": cmd_workflow,
        "credentials": cmd_credentials,
        "pod-template": cmd_pod_template,
    }[args.command]
    return handler(args)
