"""Command line: `python -m dig_outputs {download,preview} --workflow FILE` for one finished DIG run."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .source import OutputsError, open_source
from .workflow import read_workflow

EPILOG = """\
--workflow FILE is the compiled workflow the run was submitted with: its task outputs name the
stages (runs/<name>/<stage>/), the tasks that write them and the storage root.
Source (at most one; default: the root compiled into --workflow):
  --root s3://BUCKET/PREFIX --name RUN   the storage root (dig_url_root); reads runs/RUN/<stage>/
  --local DIR                            a run on disk: a `download` destination of this tool,
                                         a storage mirror holding runs/RUN/ (with --name), or
                                         the run directory itself (its children are stage dirs)
S3 endpoint and credentials: AWS_ENDPOINT_URL (MinIO etc.; path-style), AWS_PROFILE or
AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_REGION; or --endpoint-url/--profile/--region.
Set DIG_OUTPUTS_DEBUG=1 for full tracebacks.
"""


def _positive(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer from 1 to 64, got {value!r}") from None
    if not 1 <= n <= 64:
        raise argparse.ArgumentTypeError(f"must be an integer from 1 to 64, got {value!r}")
    return n


def _run_name(name: str | None) -> str | None:
    """The compiler's own run-name rule (compiler.knobs.RUN_NAME): one safe path segment."""
    if name is None:
        return None
    import re

    from compiler.knobs import RUN_NAME, pattern_hint

    if len(name) > 64 or not re.fullmatch(RUN_NAME, name):
        raise OutputsError(
            f"--name {name!r} is not a run name the compiler accepts: {pattern_hint(RUN_NAME)}"
        )
    return name


def _dest(given: str | None, default: Path) -> Path:
    dest = Path(given).expanduser() if given else default
    for p in (dest, *dest.parents):
        if p.exists() and not p.is_dir():
            raise OutputsError(
                f"--dest {dest}: {p} exists and is not a directory",
                hint="--dest names a directory (created if missing); --force never replaces a file",
            )
    return dest


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--root", help="storage root, s3://BUCKET/PREFIX (the run's dig_url_root)")
    p.add_argument("--local", metavar="DIR", help="read a run already on disk instead of --root")
    p.add_argument("--workflow", required=True, metavar="FILE", help="the compiled workflow YAML of the run")
    p.add_argument("--name", help="run name (runs/<name>/); default: the name compiled into --workflow")
    p.add_argument("--dest", help="output directory (default: ./outputs/<name>[/preview])")
    p.add_argument("--force", action="store_true", help="replace an existing download/preview at --dest")
    p.add_argument("--endpoint-url", help="S3 endpoint (default: AWS_ENDPOINT_URL)")
    p.add_argument("--profile", help="AWS profile (default: AWS_PROFILE)")
    p.add_argument("--region", help="AWS region (default: AWS_REGION, else us-east-1)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m dig_outputs",
        description="Fetch, package and preview the outputs of a finished DIG run.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser(
        "download",
        help="fetch the run's stage trees (+ task logs) and zip them to <dest>/<name>.zip",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _common(d)
    d.add_argument("--workflow-id", help="OSMO workflow id: adds `osmo workflow logs` per task under logs/")
    d.add_argument(
        "--only",
        action="append",
        metavar="STAGE",
        help="fetch only these stage dirs (repeat or comma-separate), e.g. --only anomaly",
    )
    d.add_argument("--jobs", type=_positive, default=8, help="parallel downloads, 1-64 (default 8)")
    d.add_argument(
        "--allow-missing",
        action="store_true",
        help="download what exists when a required stage is absent (failed runs: files + logs)",
    )
    p = sub.add_parser(
        "preview",
        help="write a self-contained index.html grid of sampled outputs",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _common(p)
    p.add_argument(
        "--samples", type=_positive, default=8, help="rows to show (default 8), chosen deterministically"
    )
    return parser


def run(argv: list[str] | None = None) -> Path:
    """Run the command line; the path it produced (zip or index.html)."""
    args = build_parser().parse_args(argv)
    flow = read_workflow(args.workflow)
    name = _run_name(args.name) or flow.name
    root = args.root
    if not root and not args.local:
        root = flow.root
        if not root:
            raise OutputsError(
                f"--workflow {args.workflow} names no single storage root; pass --root or --local"
            )
    source = open_source(
        root=root,
        local=args.local,
        name=name,
        endpoint_url=args.endpoint_url,
        profile=args.profile,
        region=args.region,
    )
    if args.command == "download":
        from .download import DownloadOptions, download_run

        only = [s.strip() for item in args.only or [] for s in item.split(",") if s.strip()] or None
        dest = _dest(args.dest, Path("outputs") / source.name)
        opts = DownloadOptions(
            only=only,
            workflow_id=args.workflow_id,
            force=args.force,
            jobs=args.jobs,
            allow_missing=args.allow_missing,
        )
        result = download_run(source, flow, dest, opts)
        print(
            f"{result.files} file(s), {result.bytes} bytes from {', '.join(result.stages)}; "
            f"logs: {', '.join(result.logs) or 'none'}",
            file=sys.stderr,
        )
        return result.zip_path
    from .preview import build_preview

    dest = _dest(args.dest, Path("outputs") / source.name / "preview")
    result = build_preview(source, flow, dest, samples=args.samples, force=args.force)
    print(f"{result.rows} sample row(s) × {len(result.columns)} column(s)", file=sys.stderr)
    if result.columns and not result.rows:
        reason = next((n for n in result.summary.notes if n.startswith("no ")), "no complete sample")
        raise NoSamples(f"{reason} (page written to {result.index})")
    return result.index


class NoSamples(Exception):
    """A preview page with no sample row: written, but the command fails (exit 1) and says why."""


def main(argv: list[str] | None = None) -> int:
    try:
        path = run(argv)
    except NoSamples as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        if os.environ.get("DIG_OUTPUTS_DEBUG"):
            raise
        print(f"error: {exc.strerror or exc}: {exc.filename or ''}", file=sys.stderr)
        return 2
    except (OutputsError, ValueError) as exc:
        if os.environ.get("DIG_OUTPUTS_DEBUG"):
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        from dig_preflight.s3 import StorageError

        if not isinstance(exc, StorageError) or os.environ.get("DIG_OUTPUTS_DEBUG"):
            raise
        print(f"error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"  hint: {exc.hint}", file=sys.stderr)
        return 3
    # Last line of stdout is the absolute path, so scripts can `$(python -m dig_outputs …)`.
    print(path.resolve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
