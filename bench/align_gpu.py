"""GPU registration bench (8192x8192): dig_stages.align_torch vs the numpy path; run standalone on a CUDA host.

Run: python bench/align_gpu.py [--size 8192] [--runs 3] [--samples 1048576] [--cpu]
Needs torch with CUDA, numpy and Pillow; finds dig_stages from the repo when it is not installed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "packages" / "dig-stages"))

from board_images import DISTORTIONS, corner_error, make_case  # noqa: E402
from dig_stages import align, align_torch  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=8192)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--samples", type=int, default=1 << 20, help="MI samples per fine level on the GPU")
    ap.add_argument("--cpu", action="store_true", help="also time the numpy path (slow at 8192)")
    args = ap.parse_args()
    if not align_torch.available():
        print("no CUDA torch here: align_torch falls back to numpy; nothing to measure", file=sys.stderr)
        return 1
    import torch

    print(f"device: {torch.cuda.get_device_name(0)}, torch {torch.__version__}", file=sys.stderr)
    warm = make_case(512, 0, 0, "gamma")
    align_torch.align_gpu(warm.reference, warm.moving)  # CUDA context + kernels, not timed
    rows = []
    for dist in DISTORTIONS:
        errs, secs, cerrs, csecs = [], [], [], []
        for run in range(args.runs):
            c = make_case(args.size, seed=run, case=run, distortion=dist)
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            res = align_torch.align_gpu(c.reference, c.moving, {"samples": args.samples})
            torch.cuda.synchronize()
            secs.append(time.perf_counter() - t0)
            errs.append(corner_error(c.matrix, res.transform.matrix(), args.size))
            print(
                f"  {dist} run {run}: gpu err {errs[-1]:.4f} px, {secs[-1]:.2f} s, MI {res.mi:.3f}",
                file=sys.stderr,
            )
            if args.cpu:
                t0 = time.perf_counter()
                cres = align.align(c.reference, c.moving)
                csecs.append(time.perf_counter() - t0)
                cerrs.append(corner_error(c.matrix, cres.transform.matrix(), args.size))
                print(f"  {dist} run {run}: cpu err {cerrs[-1]:.4f} px, {csecs[-1]:.2f} s", file=sys.stderr)
        rows.append(("torch/CUDA", dist, errs, secs))
        if args.cpu:
            rows.append(("numpy", dist, cerrs, csecs))
    print(f"\nsize {args.size}, {args.runs} runs per distortion (register + warp)\n")
    print("| path | distortion | median corner error (px) | max | median wall (s) |")
    print("|---|---|---|---|---|")
    for path, dist, e, t in rows:
        print(f"| {path} | {dist} | {statistics.median(e):.4f} | {max(e):.4f} | {statistics.median(t):.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
