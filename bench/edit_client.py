"""Image-edit client throughput: 64 crops at concurrency 8 against a local server with 200 ms latency per request.

Run: python bench/edit_client.py [--runs 5] [--align] [--size 512] [--latency 2] [--client-cpus 1]
Reports throughput as a fraction of the ideal concurrency / latency (8 / 0.2 s = 40 images/s); target >= 0.9.
The crops are board-like images (bench/board_images.py), not noise, so alignment and PNG costs are realistic.
`--client-cpus 1` pins the client (not the fake server) to one core, as the image-edit pod has 1 CPU.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
from board_images import board
from dig_stages import batch, edit_client
from dig_stages.edit_fake_server import FakeEditServer
from PIL import Image


def _inputs(root: Path, n: int, size: int) -> None:
    tint = np.array([0.9, 0.55, 0.35], np.float32)  # a reddish board, as the ROI crops are
    crops = [board(size, seed=k) for k in range(min(n, 8))]
    for i in range(n):
        p = root / "crop" / "IC" / f"c{i % 8}" / "normal_img" / f"{i:04d}.png"
        p.parent.mkdir(parents=True, exist_ok=True)
        rgb = np.clip(crops[i % len(crops)][..., None] * tint * 255 + 0.5, 0, 255).astype(np.uint8)
        Image.fromarray(rgb).save(p)


def _serve(latency: float, urls: multiprocessing.Queue, stop: multiprocessing.Event) -> None:
    with FakeEditServer(latency_s=latency) as srv:
        urls.put(srv.url)
        stop.wait()


def one_run(
    n: int, concurrency: int, latency: float, size: int, align: bool, client_cpus: int | None = None
) -> tuple[float, dict]:
    # The server runs in its own process, as a real endpoint would: in ours it would compete for the GIL.
    urls: multiprocessing.Queue = multiprocessing.Queue()
    stop = multiprocessing.Event()
    proc = multiprocessing.Process(target=_serve, args=(latency, urls, stop), daemon=True)
    proc.start()
    before = os.sched_getaffinity(0)
    if client_cpus:  # after the fork: only the client is pinned
        os.sched_setaffinity(0, sorted(before)[-client_cpus:])
    try:
        url = urls.get(timeout=30)
        return _client_run(url, n, concurrency, size, align)
    finally:
        os.sched_setaffinity(0, before)
        stop.set()
        proc.join(10)


def _client_run(url: str, n: int, concurrency: int, size: int, align: bool) -> tuple[float, dict]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        _inputs(root / "in", n, size)
        entries = batch.expand(root / "in", root / "out", "cells", ".jpg", side_dir=root / "side")
        cfg = edit_client.ClientConfig.from_spec(
            {"endpoint": url, "concurrency": concurrency, "align": align}, env={}
        )
        client = edit_client.EditClient(cfg)
        client.check_identity()
        summary = edit_client.run_batch(entries, client, log=lambda s: None)
        assert summary["done"] == n, summary
        return n / summary["seconds"], summary


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--latency", type=float, default=0.2)
    ap.add_argument("--size", type=int, default=64, help="crop side in px")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--align", action="store_true", help="also align each output (CPU-bound, measured apart)")
    ap.add_argument("--client-cpus", type=int, help="pin the client to this many cores (the pod has 1)")
    args = ap.parse_args()
    ideal = args.concurrency / args.latency
    fracs = []
    for r in range(args.runs):
        thr, summary = one_run(
            args.n, args.concurrency, args.latency, args.size, args.align, args.client_cpus
        )
        fracs.append(thr / ideal)
        print(
            f"run {r}: {thr:.1f} images/s in {summary['seconds']:.2f} s = {thr / ideal:.3f} of ideal",
            file=sys.stderr,
        )
    print(
        f"{args.n} crops ({args.size} px), concurrency {args.concurrency}, latency {args.latency * 1000:.0f} ms, "
        f"align {'on' if args.align else 'off'}, client cores {args.client_cpus or 'all'}: throughput {statistics.median(fracs):.3f} of ideal "
        f"{ideal:.0f} images/s (median of {args.runs}; runs {', '.join(f'{f:.3f}' for f in fracs)})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
