"""Benchmark: the same 1,000-variant sweep compiled by Hydra's basic launcher (compose per job) and by dig.

Prints both wall times, ms per variant and the ratio (target: dig >= 20x faster, <= 10 ms per variant).
Usage: python bench/sweep.py [--runs 3] [--baseline-jobs 1000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SWEEP = [
    "flow=day0",
    "usecase=pcb",
    "board=0603_H100",
    "knobs.crop_max_emit=range(1,11)",
    "knobs.num_sdg=range(10,20)",
    "knobs.render_patches=range(1,11)",
]


def run_ours(out: Path) -> tuple[float, int]:
    code = (
        "import sys,time; from pathlib import Path; from compiler.sweep import SweepRun, run_sweep; "
        "t=time.perf_counter(); _, r = run_sweep(sys.argv[1:-1], SweepRun(out_dir=Path(sys.argv[-1]), "
        "prefs={}, progress=False)); print(time.perf_counter()-t, len(r), sum(x.error is not None for x in r))"
    )
    start = time.perf_counter()
    res = subprocess.run(
        [sys.executable, "-c", code, *SWEEP, str(out)],
        cwd=ROOT,
        check=True,
        text=True,
        capture_output=True,
        env={**os.environ, "DIG_PREFERENCES": os.devnull},
    )
    wall = time.perf_counter() - start
    _inner, n, failed = res.stdout.split()
    assert int(failed) == 0, res.stdout
    return wall, int(n)


def run_hydra(out: Path, jobs: int) -> tuple[float, int]:
    sweep = (
        SWEEP
        if jobs >= 1000
        else [
            *SWEEP[:3],
            "knobs.crop_max_emit=range(1,11)",
            f"knobs.num_sdg=range(10,{10 + max(1, jobs // 10)})",
            "knobs.render_patches=1",
        ]
    )
    cmd = [
        sys.executable,
        "bench/_hydra_sweep_app.py",
        "-m",
        *sweep,
        f"hydra.sweep.dir={out}",
        "hydra/job_logging=disabled",
        "hydra/hydra_logging=disabled",
    ]
    start = time.perf_counter()
    subprocess.run(
        cmd,
        cwd=ROOT,
        check=True,
        stdout=subprocess.DEVNULL,
        env={
            **os.environ,
            "DIG_PREFERENCES": os.devnull,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        },
    )
    wall = time.perf_counter() - start
    return wall, len(list(out.rglob("workflow.yaml")))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument(
        "--baseline-jobs",
        type=int,
        default=1000,
        help="jobs for the Hydra baseline (1000 = the full sweep; fewer extrapolates per job)",
    )
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ours_times = []
        for i in range(args.runs):
            wall, n = run_ours(Path(tmp) / f"ours{i}")
            ours_times.append(wall)
        hydra_wall, hydra_n = run_hydra(Path(tmp) / "hydra", args.baseline_jobs)
    t_ours = statistics.median(ours_times)
    per_hydra = hydra_wall / hydra_n
    t_hydra = per_hydra * n
    print(f"variants                     : {n}")
    print(
        f"hydra basic launcher         : {hydra_wall:8.2f} s for {hydra_n} jobs ({per_hydra * 1000:.1f} ms/job)"
        + ("" if hydra_n == n else f" -> {t_hydra:.1f} s for {n}")
    )
    print(
        f"dig in-process sweep (median): {t_ours:8.2f} s ({t_ours / n * 1000:.2f} ms/variant, "
        f"{args.runs} runs: {', '.join(f'{t:.2f}' for t in ours_times)})"
    )
    print(f"ratio hydra / dig            : {t_hydra / t_ours:.1f}x (target >= 20x, <= 10 ms/variant)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
