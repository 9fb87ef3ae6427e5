"""Benchmark dig-runs: `dig runs` over 10,000 records, and `dig watch --sweep` of 100 workflows (query counts).

    python bench/runs.py [--records 10000] [--workflows 100]

Ratios against baselines measured in the same run: a bare sqlite3 SELECT of the same rows, and an
interpreter that starts and exits. The watch benchmark runs the fake osmo in-process (5 ms per query)
under a simulated clock and counts queries per workflow per interval and queries in flight at once.
"""

from __future__ import annotations

import argparse
import io
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
for sub in (
    "",
    "packages/dig-preflight",
    "packages/dig-outputs",
    "packages/dig-stages",
    "packages/dig-runs",
    "packages/dig-runs/tests",
):
    sys.path.insert(0, str(REPO / sub))
TARGET_MS = 200.0


def _median_ms(fn, n: int = 7) -> float:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def bench_runs(records: int, tmp: Path) -> None:
    from dig_runs.cli import main
    from dig_runs.store import COLUMNS, Store

    db = tmp / "runs.sqlite"
    os.environ["DIG_RUNS_DB"] = str(db)
    store = Store(db)
    text = (REPO / "workflows_generated/day0/pcb__0603_H100__pretrained.yaml").read_bytes()
    store.db.execute("BEGIN")
    for i in range(records):  # one transaction: building the fixture is not what is measured
        # every run its own compiled file (a sweep's variants differ): the real Day 0 text plus a knob line
        blob = text + f"# variant {i}\n".encode()
        digest = __import__("hashlib").sha256(blob).hexdigest()
        store.db.execute("INSERT INTO workflows (sha256, compiled) VALUES (?, ?)", (digest, blob))
        store.db.execute(
            "INSERT INTO runs (run_name, workflow_id, record_state, sha256, compile_key, pool, labels,"
            " workflow_name, flow, usecase, board, output_root, submit_time, last_status, sweep_id, variant)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                f"texture_defect_gen_day0-{i:08x}",
                f"texture_defect_gen_day0-{i}",
                "submitted",
                digest,
                "day0/pcb__0603_H100__pretrained",
                "pool-a",
                "{}",
                "texture_defect_gen_day0",
                "day0",
                "pcb",
                "0603_H100",
                "s3://osmo-workflows/dig",
                1.7e9 + i,
                ("RUNNING", "COMPLETED", "FAILED")[i % 3],
                f"sweep{i // 100}",
                f"v{i}.yaml",
            ),
        )
    store.db.execute("COMMIT")
    store.close()
    cols = ", ".join(COLUMNS)

    def bare() -> None:
        con = sqlite3.connect(db)
        con.execute(f"SELECT {cols} FROM runs ORDER BY id DESC").fetchall()
        con.close()

    def in_process() -> None:
        assert main(["runs"], out=io.StringIO()) == 0

    def in_process_json() -> None:
        assert main(["runs", "--json"], out=io.StringIO()) == 0

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}

    def cli() -> None:
        subprocess.run(
            [sys.executable, "-m", "dig_runs", "runs"], env=env, stdout=subprocess.DEVNULL, check=True
        )

    def python_startup() -> None:
        subprocess.run([sys.executable, "-c", "pass"], env=env, check=True)

    figures = {
        "bare sqlite SELECT": _median_ms(bare),
        "dig runs (in-process, table)": _median_ms(in_process),
        "dig runs --json (in-process)": _median_ms(in_process_json),
        "python -m dig_runs runs (process)": _median_ms(cli, 5),
        "python -c pass (process baseline)": _median_ms(python_startup, 5),
    }
    print(
        f"`dig runs` over {records} records ({db.stat().st_size / 1e6:.0f} MB record: each run with its own {len(text) // 1000} KB compiled file)"
    )
    base = figures["bare sqlite SELECT"]
    for name, ms in figures.items():
        print(
            f"  {name:<36} {ms:8.1f} ms   {ms / TARGET_MS:5.2f}x of the 200 ms target   {ms / base:6.1f}x bare SELECT"
        )
    startup = figures["python -c pass (process baseline)"]
    print(
        f"  process minus interpreter startup: {figures['python -m dig_runs runs (process)'] - startup:.1f} ms"
    )


def bench_watch_sweep(n: int, tmp: Path) -> None:
    import json

    import fake_osmo
    from dig_runs.osmo import Osmo, Result
    from dig_runs.watch import MAX_CONCURRENT_QUERIES, Clock, Watcher, WatchState

    state = tmp / "osmo"
    state.mkdir()
    (state / "scenario.json").write_text(
        json.dumps({"default_task": {"states": [["RUNNING", 6], ["COMPLETED", 1]]}})
    )
    wf = REPO / "workflows_generated/day0/pcb__0603_H100__pretrained.yaml"
    ids = []
    for _ in range(n):
        rc, out, err = fake_osmo.run(["workflow", "submit", str(wf), "-t", "json", "--set", "name=x"], state)
        ids.append(json.loads(out)["name"])
    (state / "calls.jsonl").unlink()
    lock, live, peak = threading.Lock(), [0], [0]

    def runner(args: list[str]) -> Result:
        with lock:
            live[0] += 1
            peak[0] = max(peak[0], live[0])
        time.sleep(0.005)  # a server round trip
        try:
            return Result(*fake_osmo.run(args, state))
        finally:
            with lock:
                live[0] -= 1

    sim = [0.0]
    clock = Clock(now=lambda: sim[0], sleep=lambda s: sim.__setitem__(0, sim[0] + s))
    watcher = Watcher(Osmo(runner), None, clock=clock, out=io.StringIO(), tty=False)
    interval = 30.0
    states = [WatchState(i, i, interval) for i in ids]
    polls_at: dict[str, list[float]] = {i: [] for i in ids}
    orig = watcher.query

    def query(st: WatchState):
        polls_at[st.workflow_id].append(sim[0])
        return orig(st)

    watcher.query = query  # type: ignore[method-assign]
    t = time.perf_counter()
    watcher.watch_many(states, interval=interval)
    wall = time.perf_counter() - t
    calls = [json.loads(line) for line in (state / "calls.jsonl").read_text().splitlines()]
    queries = [c for c in calls if c["verb"] == "workflow query"]
    gaps = [b - a for times in polls_at.values() for a, b in zip(times, times[1:], strict=False)]
    per_window = max(
        sum(1 for x in times if w <= x < w + interval) for times in polls_at.values() for w in times
    )
    print(
        f"`dig watch --sweep` of {n} workflows ({len(queries)} queries, simulated {sim[0] / 60:.1f} min, "
        f"wall {wall:.2f} s)"
    )
    print(
        f"  queries per workflow per {interval:.0f} s interval: max {per_window} (limit 1); "
        f"shortest gap between two queries of one workflow {min(gaps):.0f} s"
    )
    print(
        f"  queries in flight at once: max {peak[0]} (bound {MAX_CONCURRENT_QUERIES}); "
        f"{len(queries) / n:.0f} queries per workflow over its {sim[0] / 60:.1f} simulated minutes"
    )
    print(f"  all completed: {all(s.status == 'COMPLETED' for s in states)}")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--records", type=int, default=10000)
    p.add_argument("--workflows", type=int, default=100)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        bench_runs(args.records, Path(tmp))
        bench_watch_sweep(args.workflows, Path(tmp))


if __name__ == "__main__":
    main()
