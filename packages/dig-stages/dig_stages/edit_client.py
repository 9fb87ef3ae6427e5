"""Image-edit endpoint client: one request per ROI crop, bounded retries, atomic resumable writes, MI alignment.

The `image-edit` step's command line lives here; the work is split by job:
`edit_config` (the declared spec keys, `ClientConfig`), `edit_transport` (HTTP, retries, identity),
`edit_pipeline` (request and post-processing workers, `run_batch`) and `edit_output` (alignment and writes).
Every public name stays importable from this module.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from dig_stages import align, batch
from dig_stages.edit_config import (
    ALIGNMENT_OPTIONS,
    DEFAULT_ALIGN_PARAMS,
    DEFAULT_ENDPOINT,
    DEFAULT_GENERATION,
    DEFAULT_PROMPT,
    OPTIONS,
    REQUIRED_MODEL,
    ROUTES,
    ClientConfig,
    Option,
    option_problems,
)
from dig_stages.edit_output import ItemResult, finish, write_atomic
from dig_stages.edit_pipeline import request_png, run_batch
from dig_stages.edit_transport import EditClient, EditError, IdentityError

__all__ = [
    "ALIGNMENT_OPTIONS",
    "DEFAULT_ALIGN_PARAMS",
    "DEFAULT_ENDPOINT",
    "DEFAULT_GENERATION",
    "DEFAULT_PROMPT",
    "OPTIONS",
    "REQUIRED_MODEL",
    "ROUTES",
    "ClientConfig",
    "EditClient",
    "EditError",
    "IdentityError",
    "ItemResult",
    "Option",
    "finish",
    "main",
    "option_problems",
    "request_png",
    "run_batch",
    "write_atomic",
]


def _error(msg: str, prefix: str = "ERROR: ") -> int:
    """Print `msg` (prefixed unless it already starts with ERROR) on stderr; the step's exit code 1."""
    print(msg if msg.startswith("ERROR") else prefix + msg, file=sys.stderr)
    return 1


def _spec_from_argv(argv: list[str]) -> dict[str, Any]:
    """The `--spec` JSON with the command-line flags laid over it (flags win; `--no-align` sets align false)."""
    ap = argparse.ArgumentParser(prog="dig_stages image-edit")
    ap.add_argument("--spec", help="JSON task spec (docs/stage-contract.md, step image-edit)")
    ap.add_argument("--input-dir")
    ap.add_argument("--output-dir")
    ap.add_argument("--layout", choices=batch.LAYOUTS)
    ap.add_argument("--endpoint")
    ap.add_argument("--model")
    ap.add_argument("--route", choices=ROUTES)
    ap.add_argument("--output-ext")
    ap.add_argument("--concurrency", type=int)
    ap.add_argument("--timeout-s", type=float)
    ap.add_argument("--max-retries", type=int)
    ap.add_argument("--side-dir", help="captions + metadata (upstream: /tmp, not uploaded)")
    ap.add_argument("--no-align", action="store_true")
    args = ap.parse_args(argv)
    spec: dict[str, Any] = json.loads(Path(args.spec).read_text()) if args.spec else {}
    for k, v in vars(args).items():
        if k not in ("spec", "no_align") and v is not None:
            spec[k] = v
    if args.no_align:
        spec["align"] = False
    return spec


def _prepare(spec: dict[str, Any]) -> tuple[ClientConfig, list[batch.Entry]]:
    """The run's config and crop entries; raises ValueError / BatchError before any request is sent."""
    cfg = ClientConfig.from_spec(spec)
    align.AlignParams.from_dict(cfg.align_params)  # fail before any request on a bad block
    entries = batch.expand(
        spec["input_dir"],
        spec["output_dir"],
        spec["layout"],
        spec.get("output_ext") or ".jpg",
        spec.get("side_dir") or "/tmp",
    )
    return cfg, entries


def _exit_code(summary: dict[str, Any]) -> int:
    """1 when a crop failed after its retries or nothing was emitted, else 0."""
    if summary["failed"]:
        return _error(
            f"ERROR: {summary['failed']} of {summary['total']} crops failed after retries; rerun the task to "
            "resume (finished crops are skipped)"
        )
    if summary["done"] + summary["skipped"] == 0:
        return _error("ERROR: 0 image-edit images emitted")
    return 0


def main(argv: list[str]) -> int:
    """`image-edit`: expand the ROI crops, check the endpoint identity, edit + align every crop."""
    spec = _spec_from_argv(argv)
    missing = [k for k in ("input_dir", "output_dir", "layout") if not spec.get(k)]
    if missing:
        return _error(f"ERROR: image-edit needs {', '.join(missing)} (spec key or --flag)")
    problems = option_problems(spec)
    if problems:
        return _error("ERROR: " + "\n  ".join(problems))
    try:
        cfg, entries = _prepare(spec)
    except (ValueError, batch.BatchError) as exc:
        return _error(str(exc))
    client = EditClient(cfg)
    print(
        f"image-edit: {len(entries)} crops, endpoint {client.base}, model {cfg.model}, route {cfg.route}, "
        f"concurrency {cfg.concurrency}, auth {'bearer' if cfg.token else 'none'}",
        file=sys.stderr,
    )
    try:
        client.check_identity()
    except (IdentityError, EditError) as exc:
        return _error(str(exc), "ERROR: endpoint identity check failed: ")
    summary = run_batch(entries, client)
    print("image-edit summary: " + json.dumps(summary), file=sys.stderr)
    return _exit_code(summary)
