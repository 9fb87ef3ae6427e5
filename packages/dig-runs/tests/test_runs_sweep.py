"""Sweeps as one workflow per variant: bounded in flight, resumable after a kill, watched as one table."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from dig_runs.store import Store
from runs_helpers import dig, sim_clock


@pytest.fixture(scope="module")
def sweep_50(tmp_path_factory):
    from compiler.sweep import SweepRun, run_sweep

    os.environ.setdefault("DIG_PREFERENCES", os.devnull)
    target, results = run_sweep(
        ["flow=day0", "usecase=pcb", "knobs.crop_max_emit=range(1,51)"],
        SweepRun(out_dir=tmp_path_factory.mktemp("sweep") / "s50", prefs={}, progress=False),
    )
    assert len(results) == 50 and not any(r.error for r in results)
    return target


def _sweep_cmd(sweep_dir):
    return [
        sys.executable,
        "-m",
        "dig_runs",
        "submit",
        "--sweep",
        str(sweep_dir),
        "--pool",
        "p1",
        "--max-inflight",
        "4",
        "--interval",
        "0.05",
        "--skip-preflight",
        "--yes",
    ]


@pytest.mark.slow
def test_sweep_killed_after_17_and_resumed_submits_each_variant_once(osmo, sweep_50):
    # Each workflow finishes after a few polls; the 18th submit is accepted by OSMO, then the CLI hangs:
    # dig is killed there, with the 18th record written but its answer never read.
    osmo.scenario(default_task={"states": [["RUNNING", 1], ["COMPLETED", 1]]}, hang_on_submit=18)
    proc = subprocess.Popen(
        _sweep_cmd(sweep_50),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 240
    # The fake logs a call before it validates and stores the workflow: wait until OSMO holds the
    # 18th (a fixed grace period lost that race on a loaded machine, so the kill came before acceptance).
    while len(osmo.calls("workflow submit")) < 18 or len(osmo.workflows()) < 18:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # dig and its hung osmo child: the group this test started
    proc.communicate()  # reap it and close its pipes
    store = Store()
    states = sorted(r.record_state for r in store.list(sweep=sweep_50.name))
    assert states == ["submitted"] * 17 + ["submitting"]

    osmo.scenario(default_task={"states": [["RUNNING", 1], ["COMPLETED", 1]]})
    done = subprocess.run(_sweep_cmd(sweep_50), capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stderr
    said = done.stdout + done.stderr
    assert "interrupted submit had reached OSMO" in said
    assert "50 variants, 18 already submitted, 32 to submit" in said

    submits = osmo.calls("workflow submit")
    assert len(submits) == 50  # exactly one submit per variant, across the kill
    assert len(osmo.workflows()) == 50
    assert max(c["live"] for c in submits) <= 3  # at most 4 in flight: <= 3 live when one more is sent
    runs = store.list(sweep=sweep_50.name)
    assert len(runs) == 50 and {r.record_state for r in runs} == {"submitted"}
    assert len({r.variant for r in runs}) == 50
    labels = [r.labels_dict for r in runs]
    assert all(lab["dig-sweep"] == sweep_50.name and lab["dig-variant"] for lab in labels)
    # a third run finds nothing to do
    again = subprocess.run(_sweep_cmd(sweep_50), capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and "0 to submit" in again.stdout
    assert len(osmo.calls("workflow submit")) == 50
    print(
        f"sweep resume: submit calls {len(submits)}, list calls {len(osmo.calls('workflow list'))}, "
        f"query calls {len(osmo.calls('workflow query'))}"
    )

    # watch --sweep: one table, failures with their cause
    from dig_runs.osmo import Osmo

    sim, clock = sim_clock()
    code, out = dig("watch", "--sweep", sweep_50.name, "--json", osmo=Osmo(osmo.runner()), clock=clock)
    assert code == 0
    doc = json.loads(out)
    assert doc["counts"] == {"COMPLETED": 50}


def test_watch_sweep_reports_failures_and_bounds_queries(osmo, day0_file, tmp_path):
    from dig_runs.osmo import Osmo

    sweep = tmp_path / "sw"
    sweep.mkdir()
    results = []
    for i in range(6):
        (sweep / f"day0__pcb__0603_H100__pretrained__{i:010x}.yaml").write_bytes(day0_file.read_bytes())
        results.append(
            {
                "overrides": [f"knobs.num_sdg={i}"],
                "file": f"day0__pcb__0603_H100__pretrained__{i:010x}.yaml",
                "sha256": None,
                "error": None,
                "warnings": [],
            }
        )
    (sweep / "sweep.json").write_text(json.dumps({"sweep_id": "sw6", "results": results}))
    osmo.scenario(
        per_submit={
            "2": {
                "tasks": {
                    "image-edit": {
                        "states": [["RUNNING", 1], ["FAILED", 1]],
                        "exit_code": 1,
                        "error_logs": ["OSError: [Errno 28] No space left on device"],
                    }
                }
            }
        }
    )
    code, _ = dig("submit", "--sweep", str(sweep), "--max-inflight", "6", "--skip-preflight", "--yes")
    assert code == 0
    assert {r.variant.split("__")[-1] for r in Store().list(sweep="sw6")} == {
        f"{i:010x}.yaml" for i in range(6)
    }
    assert Store().list(sweep="sw6")[0].compile_key == "day0/pcb__0603_H100__pretrained"
    sim, clock = sim_clock()
    code, out = dig("watch", "--sweep", "sw6", "--interval", "30", osmo=Osmo(osmo.runner()), clock=clock)
    assert code == 1
    assert "sweep sw6: COMPLETED 5, FAILED 1" in out
    assert "the image-edit endpoint failed or is undersized" in out
    # not more than one query per workflow per interval
    polls = len(osmo.calls("workflow query"))
    rounds = len(sim.sleeps) + 1
    assert polls <= 6 * rounds


def test_sweep_refuses_an_edited_variant(osmo, day0_file, tmp_path):
    sweep = tmp_path / "sw"
    sweep.mkdir()
    (sweep / "v.yaml").write_text(day0_file.read_text())
    (sweep / "sweep.json").write_text(
        json.dumps(
            {
                "sweep_id": "e1",
                "results": [
                    {
                        "overrides": ["x=1"],
                        "file": "v.yaml",
                        "sha256": "0" * 64,
                        "error": None,
                        "warnings": [],
                    }
                ],
            }
        )
    )
    code, _ = dig("submit", "--sweep", str(sweep), "--skip-preflight", "--yes")
    assert code == 2 and not osmo.calls("workflow submit")
