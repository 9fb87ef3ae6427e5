"""Command line: `python -m dig_preflight {urls,workflow,credentials,pod-template}`."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from .flows import (
    BUILTIN_USECASES,
    DEFAULT_BOARD,
    DEFAULT_ROOT,
    DEFAULT_SCENE,
    FLOWS,
    FlowRequest,
    UsageError,
    parse_anomaly_types,
    required_artifacts,
)
from .report import Report

STORAGE_EXITS = """exit codes (urls, workflow):
  0  every required artifact present (and runs/<name>/ free)
  1  something is missing, empty, malformed or would be overwritten (incl. a missing bucket)
  2  usage error (unknown flow, flow/usecase combination without flow code, bad arguments or YAML)
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


def _add_s3_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("storage access (defaults from AWS_* environment variables)")
    g.add_argument("--endpoint-url", help="S3 endpoint, e.g. http://localhost:30090 (AWS_ENDPOINT_URL)")
    g.add_argument("--profile", help="AWS profile (AWS_PROFILE)")
    g.add_argument("--region", help="region (AWS_REGION / AWS_DEFAULT_REGION; default us-east-1)")
    g.add_argument("--max-attempts", type=int, help="total attempts per request incl. retries (AWS_MAX_ATTEMPTS; 4)")


def build_parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="python -m dig_preflight",
        description="Pre-submit checks for DIG runs. Read-only: nothing is ever written to storage.",
        epilog="\n\n".join([STORAGE_EXITS, CRED_EXITS, POD_EXITS]),
        formatter_class=fmt,
    )
    sub = parser.add_subparsers(dest="command", required=True)

    u = sub.add_parser("urls", help="check the storage artifacts a flow reads", epilog=STORAGE_EXITS, formatter_class=fmt)
    u.add_argument("--flow", required=True, choices=FLOWS)
    u.add_argument("--usecase", default="pcb", help=f"{', '.join(BUILTIN_USECASES)} or a custom name (default pcb)")
    u.add_argument("--root", default=os.environ.get("DIG_URL_ROOT") or DEFAULT_ROOT,
                   help=f"dig_url_root (DIG_URL_ROOT; default {DEFAULT_ROOT})")
    u.add_argument("--checkpoint-step", type=int, help="checkpoint iteration (default: the use case's shipped step)")
    u.add_argument("--use-pretrained-checkpoint", action=argparse.BooleanOptionalAction, default=True,
                   help="require models/<usecase> (default yes; --no-... for finetune-from-scratch)")
    u.add_argument("--anomaly-types", help='JSON list of [material, defect] pairs (default: the use case\'s)')
    u.add_argument("--name", help="run name: runs/<name>/ must not exist yet")
    u.add_argument("--board", default=DEFAULT_BOARD, help=f"PCBA board (default {DEFAULT_BOARD})")
    u.add_argument("--scene-filename", default=DEFAULT_SCENE, help=f"scene USD (default {DEFAULT_SCENE})")
    u.add_argument("--real-image-filename", help="board photo under the assets root (default: from --board)")
    u.add_argument("--zip-root", help="setup glass: prefix holding mobile_screen.zip (default <root>/uploads/glass-zip)")
    u.add_argument("--json", action="store_true", help="JSON report on stdout")
    _add_s3_args(u)

    w = sub.add_parser("workflow", help="check every URL input, output run and credential of a compiled workflow",
                       epilog=STORAGE_EXITS, formatter_class=fmt)
    w.add_argument("file", type=Path, help="compiled workflow YAML")
    w.add_argument("--name", help="run name to check when the YAML still holds {{ name }}")
    w.add_argument("--no-osmo", action="store_true", help="skip the OSMO credential lookup")
    w.add_argument("--json", action="store_true")
    _add_s3_args(w)

    c = sub.add_parser("credentials", help="HF token + OSMO hf-token credential", epilog=CRED_EXITS, formatter_class=fmt)
    c.add_argument("--no-osmo", action="store_true", help="skip the OSMO credential lookup")
    c.add_argument("--json", action="store_true")

    p = sub.add_parser("pod-template", help="OSMO POD_TEMPLATE: nvoptix mount and /dev/shm size",
                       epilog=POD_EXITS, formatter_class=fmt)
    p.add_argument("--file", type=Path, help="template JSON/YAML instead of `osmo config show POD_TEMPLATE`")
    p.add_argument("--min-dshm-gib", type=int, default=16, help="minimum /dev/shm in GiB (default 16; 32 preferred)")
    p.add_argument("--template-name", default="default_user", help="pod template to inspect (default default_user)")
    p.add_argument("--checks", choices=("render", "train"), default="render",
                   help="render: nvoptix mount + /dev/shm (Kit render pods, the default); train: /dev/shm only")
    p.add_argument("--json", action="store_true")
    return parser


def _store(args: argparse.Namespace):
    from .s3 import S3Store

    return S3Store(endpoint_url=args.endpoint_url, profile=args.profile, region=args.region,
                   max_attempts=args.max_attempts)


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


def cmd_urls(args: argparse.Namespace) -> int:
    from .storage import StoragePreflight

    label = f"urls {args.flow} {args.usecase}"
    try:
        req = FlowRequest(
            flow=args.flow, usecase=args.usecase, root=args.root, checkpoint_step=args.checkpoint_step,
            use_pretrained_checkpoint=args.use_pretrained_checkpoint,
            anomaly_types=parse_anomaly_types(args.anomaly_types) if args.anomaly_types else None,
            name=args.name, board=args.board, scene_filename=args.scene_filename,
            real_image_filename=args.real_image_filename, zip_root=args.zip_root,
        )
        artifacts = required_artifacts(req)
    except (UsageError, json.JSONDecodeError) as exc:
        return _usage(label, str(exc), args.json)
    report = Report(label)
    if not artifacts:
        report.notes.append(f"flow {args.flow} ({args.usecase}) reads nothing from storage; nothing to check")
        return _emit(report, args.json)
    try:
        StoragePreflight(_store(args), report).run(artifacts)
    except Exception as exc:  # a StorageError raised outside a check (bad profile): say it, exit 3
        from .s3 import StorageError

        if not isinstance(exc, StorageError):
            raise
        report.add("storage", "error", "", exc.message, exc.hint)
        report.exit_code = 3
    return _emit(report, args.json)


def cmd_workflow(args: argparse.Namespace) -> int:
    import yaml

    from .credentials import check_osmo_credential, list_osmo_credentials
    from .osmo import osmo_path
    from .storage import StoragePreflight
    from .workflow import WorkflowError, workflow_needs

    label = f"workflow {args.file}"
    try:
        doc = yaml.safe_load(args.file.read_text(encoding="utf-8"))
        needs = workflow_needs(doc, name=args.name)
    except (OSError, yaml.YAMLError, WorkflowError, UsageError) as exc:
        return _usage(label, str(exc), args.json)
    report = Report(label, notes=list(needs.notes))
    if needs.artifacts:
        StoragePreflight(_store(args), report).run(needs.artifacts)
    if needs.credentials:
        if args.no_osmo or osmo_path() is None:
            why = "--no-osmo" if args.no_osmo else "osmo CLI not on PATH"
            for cred, keys in sorted(needs.credentials.items()):
                report.add(f"OSMO credential {cred}", "skip", f"keys {', '.join(sorted(keys)) or '-'}", f"not checked ({why})")
        else:
            entries, why = list_osmo_credentials()
            for cred, keys in sorted(needs.credentials.items()):
                if entries is None:
                    report.add(f"OSMO credential {cred}", "error", "osmo credential list", why, "run `osmo login <url>`")
                else:
                    check_osmo_credential(report, entries, cred, keys,
                                          f"osmo credential set {cred} --type GENERIC --payload "
                                          + " ".join(f"{k}=..." for k in sorted(keys)))
        statuses = {c.status for c in report.checks}
        report.exit_code = 3 if "error" in statuses else 1 if "fail" in statuses else 0
    return _emit(report, args.json)


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
            doc = yaml.safe_load(args.file.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            report.add("read POD_TEMPLATE", "fail", str(args.file), f"cannot read: {exc}", "pass a JSON/YAML file")
            report.exit_code = EXIT_ENV
            return _emit(report, args.json)
    else:
        doc = load_from_osmo(report)
        if doc is None:
            return _emit(report, args.json)
    try:
        check_template(doc, report, min_dshm_gib=args.min_dshm_gib, name=args.template_name,
                       nvoptix=args.checks == "render")
    except ValueError as exc:
        report.add("read POD_TEMPLATE", "fail", "", str(exc), "check --template-name")
        report.exit_code = EXIT_ENV
    code = _emit(report, args.json)
    if code == 1 and not args.json:
        print("\nPatch (review with the user first: it changes the cluster-wide POD_TEMPLATE; "
              "apply with `osmo config update POD_TEMPLATE`, then re-run this check):")
        print(report.extra["patch"])
    return code


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler = {
        "urls": cmd_urls, "workflow": cmd_workflow, "credentials": cmd_credentials, "pod-template": cmd_pod_template,
    }[args.command]
    return handler(args)
