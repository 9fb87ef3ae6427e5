"""Command line: `python -m dig_preflight {urls,workflow,credentials,pod-template}`."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from .cli_parser import CRED_EXITS, MAX_ATTEMPTS, POD_EXITS, STORAGE_EXITS, build_parser
from .report import Report

__all__ = [
    "CRED_EXITS",
    "MAX_ATTEMPTS",
    "POD_EXITS",
    "STORAGE_EXITS",
    "build_parser",
    "check_workflow",
    "main",
]


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
    from .requirements import WorkflowError
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
        _check_storage(report, store, needs.artifacts)
    else:
        report.notes.append(
            "the workflow reads nothing from storage and writes no runs/<name>/: nothing to check"
        )
    if credentials and needs.credentials:
        _check_credentials(report, needs.credentials, no_osmo=args.no_osmo)
        statuses = {c.status for c in report.checks}
        report.exit_code = 3 if "error" in statuses else 1 if "fail" in statuses else 0
    return _emit(report, args.json)


def _check_storage(report: Report, store, artifacts: list) -> None:
    from .s3 import StorageError
    from .storage import StoragePreflight

    try:
        StoragePreflight(store, report).run(artifacts)
    except StorageError as exc:  # raised outside a check (bad profile): say it, exit 3
        report.add("storage", "error", "", exc.message, exc.hint)
        report.exit_code = 3


def _check_credentials(report: Report, needs: dict[str, set[str]], *, no_osmo: bool) -> None:
    """A row per OSMO credential the workflow names (and the keys it reads), skipped without osmo."""
    from .credentials import check_osmo_credential, list_osmo_credentials
    from .osmo import osmo_path

    if no_osmo or osmo_path() is None:
        why = "--no-osmo" if no_osmo else "osmo CLI not on PATH"
        for cred, keys in sorted(needs.items()):
            report.add(
                f"OSMO credential {cred}",
                "skip",
                f"keys {', '.join(sorted(keys)) or '-'}",
                f"not checked ({why})",
            )
        return
    entries, why = list_osmo_credentials()
    for cred, keys in sorted(needs.items()):
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
