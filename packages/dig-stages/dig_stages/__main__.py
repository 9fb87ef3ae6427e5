"""`python -m dig_stages <step> [args]`: dispatch one in-pod step by name.

Steps are looked up lazily (module path as a string) so a pod only needs the modules of
the step it runs; the compiler injects exactly those (static import analysis), so keep
intra-package imports absolute and at module top level.
"""

from __future__ import annotations

import importlib
import sys

# step name -> (module, function). Each function takes argv (list[str]) and returns an exit code.
STEPS: dict[str, tuple[str, str]] = {
    # pod preflights and input location
    "pod-preflight": ("dig_stages.pod", "main_preflight"),
    # render-side drivers (call the container tools, check their outputs)
    "render-day0": ("dig_stages.render", "main_day0"),
    "render-structural": ("dig_stages.render", "main_structural"),
    "render-day1": ("dig_stages.render", "main_day1"),
    # image-edit client (+ alignment of its outputs)
    "image-edit": ("dig_stages.edit_client", "main"),
    "batch-expand": ("dig_stages.batch", "main"),
    "align": ("dig_stages.align", "main"),
    # AnomalyGen inference / finetune
    "infer-day0": ("dig_stages.infer", "main_day0"),
    "infer-day1": ("dig_stages.infer", "main_day1"),
    "infer-manual": ("dig_stages.infer", "main_manual"),
    "defect-spec": ("dig_stages.defect_spec", "main"),
    "pick-best-step": ("dig_stages.checkpoint", "main_pick_best_step"),
    "finetune": ("dig_stages.finetune", "main"),
    # setup flows
    "setup-pretrained": ("dig_stages.setup", "main_pretrained"),
    "setup-model": ("dig_stages.setup", "main_model"),
    "setup-data": ("dig_stages.setup", "main_data"),
    "setup-assets": ("dig_stages.setup", "main_assets"),
    # local runs and tests only (never injected: crop is numpy, the USD ones need usd-core)
    "crop": ("dig_stages.crop", "main"),
    "scan-grid": ("dig_stages.usd_scan", "main"),
    "preview-render": ("dig_stages.usd_preview", "main"),
    "make-synthetic-board": ("dig_stages.synthetic_board", "main"),
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: python -m dig_stages <step> [args]\n\nsteps:\n  " + "\n  ".join(sorted(STEPS)))
        return 0 if argv else 2
    step, rest = argv[0], argv[1:]
    if step not in STEPS:
        import difflib

        close = difflib.get_close_matches(step, STEPS, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        print(f"dig_stages: unknown step '{step}'{hint}; known: {', '.join(sorted(STEPS))}", file=sys.stderr)
        return 2
    module, func = STEPS[step]
    return int(getattr(importlib.import_module(module), func)(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
