"""GPU registration bench: dig_stages.align_torch batches of crops and one full board; run on a CUDA host.

Run: python bench/align_gpu.py [--crop 512] [--crops 512] [--batches 256,512] [--size 8192] [--runs 3]
Prints: batch-size independence (the same crops in batches of different sizes give identical transforms),
accuracy per distortion (GPU and numpy paths on the same crops), crops/s for batched crops per batch size
(register + warp, host arrays in, host arrays out, median of --runs), and per distortion the corner error
and end-to-end time of one --size board (first call of the process included), with the copy back to the
host done both ways (align_torch.HOST_COPY). Needs torch with CUDA, numpy and Pillow.
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


def _timed(f):  # noqa: ANN001, ANN202 - bench helper
    import torch

    torch.cuda.synchronize()
    t0 = time.perf_counter()
    r = f()
    torch.cuda.synchronize()
    return r, time.perf_counter() - t0


def _same(a: list, b: list) -> bool:
    return all(np.array_equal(x.transform.matrix(), y.transform.matrix()) for x, y in zip(a, b, strict=True))


def crops(args: argparse.Namespace) -> None:
    cases = [
        make_case(args.crop, seed=k, case=k, distortion=d) for d in DISTORTIONS for k in range(len(CASES))
    ]
    refs, movs = [c.reference for c in cases], [c.moving for c in cases]
    align_torch.align_batch(refs[:2], movs[:2])  # CUDA context + kernels, not timed
    whole = align_torch.align_batch(refs, movs, max_batch=len(refs))
    small = align_torch.align_batch(refs, movs, max_batch=5)
    ones = [align_torch.align_batch([r], [m])[0] for r, m in zip(refs, movs, strict=True)]
    again = align_torch.align_batch(refs, movs, max_batch=len(refs))
    print(
        f"batch-size independence ({len(refs)} crops; batches of {len(refs)}, 5, 1): "
        f"{_same(whole, small) and _same(whole, ones)}; repeatable: {_same(whole, again)}"
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
    big_refs = [refs[i % len(refs)] for i in range(args.crops)]
    big_movs = [movs[i % len(movs)] for i in range(args.crops)]
    for batch in (int(b) for b in args.batches.split(",")):
        rates = []
        for _ in range(args.runs):
            res, dt = _timed(lambda b=batch: align_torch.align_batch(big_refs, big_movs, max_batch=b))
            rates.append(args.crops / dt)
        assert all(r.image.shape == big_refs[0].shape for r in res)
        print(
            f"\nbatched: {args.crops} crops of {args.crop}², batches of {batch}: {statistics.median(rates):.0f} "
            f"crops/s (median of {args.runs}: {', '.join(f'{r:.0f}' for r in rates)}), register + warp, host to host"
        )
    align_torch.TIMINGS = {}
    _timed(lambda: align_torch.align_batch(big_refs, big_movs))
    print(
        "one run by phase (synchronised): "
        + ", ".join(f"{k} {v:.3f} s" for k, v in align_torch.TIMINGS.items())
    )
    align_torch.TIMINGS = None


def board(args: argparse.Namespace) -> None:
    print(
        f"\n| board {args.size}² | distortion | corner error (px) | end-to-end s, copy back staged | direct |"
    )
    print("|---|---|---|---|---|")
    for d in DISTORTIONS:
        c = make_case(args.size, seed=0, case=0, distortion=d)
        secs: dict[str, list[float]] = {"staged": [], "direct": []}
        errs = []
        for _ in range(args.runs):
            for mode, times in secs.items():
                align_torch.HOST_COPY = mode
                r, dt = _timed(lambda c=c: align_torch.align_gpu(c.reference, c.moving))
                times.append(dt)
                errs.append(corner_error(c.matrix, r.transform.matrix(), args.size))
        align_torch.HOST_COPY = "staged"
        cols = [f"{statistics.median(t):.3f} ({', '.join(f'{s:.3f}' for s in t)})" for t in secs.values()]
        print(f"| | {d} | {statistics.median(errs):.4f} (max {max(errs):.4f}) | {cols[0]} | {cols[1]} |")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--crop", type=int, default=512)
    ap.add_argument("--crops", type=int, default=512, help="crops per throughput run")
    ap.add_argument("--batches", default=str(align_torch.MAX_BATCH), help="comma-separated batch sizes")
    ap.add_argument("--size", type=int, default=8192, help="board side; 0 skips the board")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    if not align_torch.available():
        print("no CUDA torch here: align_torch falls back to numpy; nothing to measure", file=sys.stderr)
        return 1
    import torch

    print(f"device: {torch.cuda.get_device_name(0)}, torch {torch.__version__}")
    crops(args)
    if args.size:
        board(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
