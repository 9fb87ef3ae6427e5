"""`dig endpoint manifest|check`: the in-cluster image-edit endpoint (needs no run record)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from dig_runs.cli_context import Ctx, UsageError


def cmd_endpoint(ctx: Ctx, args: argparse.Namespace) -> int:
    from dig_runs import endpoint

    if args.action == "manifest":
        try:
            text = endpoint.manifest_text(args.option)
        except (ValueError, OSError) as exc:
            raise UsageError(str(exc)) from None
        if args.out:
            from compiler.pipeline import write_atomic

            write_atomic(Path(args.out), text)
            ctx.say(f"wrote {args.out}")
        else:
            ctx.out.write(text)
        return 0
    url = args.url or endpoint.endpoint_group("cluster")["url"]
    res = endpoint.check(url, timeout=args.timeout)
    if ctx.json:
        print(json.dumps(res.to_dict(), indent=2), file=ctx.out)
    else:
        ctx.out.write(f"{'OK' if res.ok else 'FAIL'} {res.url}: {res.message}\n")
    return 0 if res.ok else (1 if res.reachable else 3)
