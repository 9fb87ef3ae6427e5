"""Command line: `python -m dig_outputs {download,preview}` for one finished DIG run."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .flows import FLOWS, get_flow
from .source import OutputsError, open_source

EPILOG = """\
Source (exactly one):
  --root s3://BUCKET/PREFIX --name RUN   the storage root (dig_url_root); reads runs/RUN/<stage>/
  --local DIR                            a run on disk: a `download` destination of this tool,
                                         a storage mirror holding runs/RUN/ (with --name), or
                                         the run directory itself (its children are stage dirs)
S3 endpoint and credentials: AWS_ENDPOINT_URL (MinIO etc.; path-style), AWS_PROFILE or
AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_REGION; or --endpoint-url/--profile/--region.
Set DIG_OUTPUTS_DEBUG=1 for full tracebacks.
"""


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--root", help="storage root, s3://BUCKET/PREFIX (the run's dig_url_root)")
    p.add_argument("--local", metavar="DIR", help="read a run already on disk instead of --root")
    p.add_argument("--name", help="run name (runs/<name>/); required with --root")
    p.add_argument("--flow", required=True, choices=list(FLOWS), help="the flow that produced the run")
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
    d.add_argument("--only", action="append", metavar="STAGE",
                   help="fetch only these stage dirs (repeat or comma-separate), e.g. --only anomaly")
    d.add_argument("--jobs", type=int, default=8, help="parallel downloads (default 8)")
    d.add_argument("--allow-missing", action="store_true",
                   help="download what exists when a required stage is absent (failed runs: files + logs)")
    p = sub.add_parser(
        "preview",
        help="write a self-contained index.html grid of sampled outputs",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _common(p)
    p.add_argument("--samples", type=int, default=8, help="rows to show (default 8), chosen deterministically")
    return parser


def run(argv: list[str] | None = None) -> Path:
    """Run the command line; the path it produced (zip or index.html)."""
    args = build_parser().parse_args(argv)
    flow = get_flow(args.flow)
    source = open_source(
        root=args.root, local=args.local, name=args.name,
        endpoint_url=args.endpoint_url, profile=args.profile, region=args.region,
    )
    if args.command == "download":
        from .download import download_run

        only = [s.strip() for item in args.only or [] for s in item.split(",") if s.strip()] or None
        dest = Path(args.dest) if args.dest else Path("outputs") / source.name
        result = download_run(
            source, flow, dest, only=only, workflow_id=args.workflow_id, force=args.force, jobs=args.jobs,
            allow_missing=args.allow_missing,
        )
        print(f"{result.files} file(s), {result.bytes} bytes from {', '.join(result.stages)}; "
              f"logs: {', '.join(result.logs) or 'none'}", file=sys.stderr)
        return result.zip_path
    from .preview import build_preview

    dest = Path(args.dest) if args.dest else Path("outputs") / source.name / "preview"
    result = build_preview(source, flow, dest, samples=args.samples, force=args.force)
    print(f"{result.rows} sample row(s) × {len(result.columns)} column(s)", file=sys.stderr)
    return result.index


def main(argv: list[str] | None = None) -> int:
    try:
        path = run(argv)
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
