"""Benchmark: median wall time of `python -m compiler flow=day0 usecase=pcb` vs a bare @hydra.main app.

Both are measured in the same run, alternating, several times each; prints both medians and the
ratio (target <= 1.5). Usage: python bench/compile_latency.py [--runs 9]
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


def timed(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=9)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "DIG_PREFERENCES": os.devnull, "PYTHONDONTWRITEBYTECODE": "0"}
        ours = [sys.executable, "-m", "compiler", "flow=day0", "usecase=pcb", f"out={tmp}/day0.yaml"]
        bare = [
            sys.executable,
            "bench/_hydra_bare_app.py",
            "flow=day0",
            "usecase=pcb",
            "board=0603_H100",
            "hydra.output_subdir=null",
            f"hydra.run.dir={tmp}/hydra",
            "hydra/job_logging=disabled",
            "hydra/hydra_logging=disabled",
        ]
        timed(ours, env), timed(bare, env)  # warm the bytecode caches
        t_ours, t_bare = [], []
        for _ in range(args.runs):
            t_bare.append(timed(bare, env))
            t_ours.append(timed(ours, env))
    m_ours, m_bare = statistics.median(t_ours), statistics.median(t_bare)
    print(f"bare @hydra.main compose : median {m_bare * 1000:7.1f} ms over {args.runs} runs")
    print(f"python -m compiler day0  : median {m_ours * 1000:7.1f} ms over {args.runs} runs")
    print(f"ratio ours / bare        : {m_ours / m_bare:.2f} (target <= 1.5)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
