"""GPU registration bench: dig_stages.align_torch batches of crops and one full board; run on a CUDA host.

Run: python bench/align_gpu.py [--crop 512] [--crops 512] [--batch 256] [--size 8192] [--runs 2]
Prints: batch-size independence (the same crops in batches of different sizes give identical transforms),
accuracy per distortion (GPU and numpy paths on the same crops), crops/s for batched crops (register +
warp, median of --runs), and the end-to-end time of one --size board per distortion (host arrays in, warped
host array out). Needs torch with CUDA, numpy and Pillow.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
try:
    from dig_stages import align, align_torch
except ImportError:  # run from the repo without dig_stages installed
    sys.path.insert(0, str(HERE.parent / "packages" / "dig-stages"))
    from dig_stages import align, align_torch

from board_images import CASES, DISTORTIONS, corner_error, make_case  # noqa: E402


def _sync() -> None:
    import torch

    torch.cuda.synchronize()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--crop", type=int, default=512)
    ap.add_argument("--crops", type=int, default=512, help="crops per throughput run")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--size", type=int, default=8192, help="board side; 0 skips the board")
    ap.add_argument("--runs", type=int, default=2)
    args = ap.parse_args()
    if not align_torch.available():
        print("no CUDA torch here: align_torch falls back to numpy; nothing to measure", file=sys.stderr)
        return 1
    import torch

    print(f"device: {torch.cuda.get_device_name(0)}, torch {torch.__version__}")
    cases = [
        make_case(args.crop, seed=k, case=k, distortion=d) for d in DISTORTIONS for k in range(len(CASES))
    ]
    refs, movs = [c.reference for c in cases], [c.moving for c in cases]
    align_torch.align_batch(refs[:2], movs[:2])  # CUDA context + kernels, not timed
    whole = align_torch.align_batch(refs, movs, max_batch=len(refs))
    small = align_torch.align_batch(refs, movs, max_batch=5)
    ones = [align_torch.align_batch([r], [m])[0] for r, m in zip(refs, movs, strict=True)]
    same = all(
        np.array_equal(a.transform.matrix(), b.transform.matrix())
        and np.array_equal(a.transform.matrix(), c.transform.matrix())
        for a, b, c in zip(whole, small, ones, strict=True)
    )
    again = align_torch.align_batch(refs, movs, max_batch=len(refs))
    repeat = all(
        np.array_equal(a.transform.matrix(), b.transform.matrix()) for a, b in zip(whole, again, strict=True)
    )
    print(
        f"batch-size independence ({len(refs)} crops; batches of {len(refs)}, 5, 1): {same}; repeatable: {repeat}"
    )
    cpu = [align.align(r, m) for r, m in zip(refs, movs, strict=True)]
    print(f"\n| {args.crop}² crops | distortion | GPU median / max corner error (px) | numpy median / max |")
    print("|---|---|---|---|")
    for d in DISTORTIONS:
        ix = [i for i, c in enumerate(cases) if c.distortion == d]
        ge = [corner_error(cases[i].matrix, whole[i].transform.matrix(), args.crop) for i in ix]
        ce = [corner_error(cases[i].matrix, cpu[i].transform.matrix(), args.crop) for i in ix]
        print(
            f"| | {d} | {statistics.median(ge):.4f} / {max(ge):.4f} | {statistics.median(ce):.4f} / {max(ce):.4f} |"
        )
    n = args.crops
    big_refs = [refs[i % len(refs)] for i in range(n)]
    big_movs = [movs[i % len(movs)] for i in range(n)]
    rates = []
    align_torch.TIMINGS = {}
    for _ in range(args.runs):
        _sync()
        t0 = time.perf_counter()
        res = align_torch.align_batch(big_refs, big_movs, max_batch=args.batch)
        _sync()
        rates.append(n / (time.perf_counter() - t0))
    assert all(r.image.shape == big_refs[0].shape for r in res)
    phases = ", ".join(f"{k} {v / args.runs:.3f} s" for k, v in align_torch.TIMINGS.items())
    align_torch.TIMINGS = None
    print(
        f"\nbatched: {n} crops of {args.crop}², batches of {args.batch}: {statistics.median(rates):.0f} crops/s "
        f"(median of {args.runs}: {', '.join(f'{r:.0f}' for r in rates)}), register + warp, host to host"
    )
    print(f"per run: {phases}")
    if args.size:
        print(
            f"\n| board {args.size}² | distortion | corner error (px) | end-to-end s (median of {args.runs}) |"
        )
        print("|---|---|---|---|")
        for d in DISTORTIONS:
            c = make_case(args.size, seed=0, case=0, distortion=d)
            secs, errs = [], []
            align_torch.TIMINGS = {}
            for _ in range(args.runs):
                _sync()
                t0 = time.perf_counter()
                r = align_torch.align_gpu(c.reference, c.moving)
                _sync()
                secs.append(time.perf_counter() - t0)
                errs.append(corner_error(c.matrix, r.transform.matrix(), args.size))
            phases = ", ".join(f"{k} {v / args.runs:.3f}" for k, v in align_torch.TIMINGS.items())
            align_torch.TIMINGS = None
            print(
                f"| | {d} | {statistics.median(errs):.4f} | {phases} | {statistics.median(secs):.3f} ({', '.join(f'{s:.3f}' for s in secs)}) |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
