"""submit -> watch -> logs/cancel/restart against the fake osmo; every terminal class classified."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys

import pytest
from dig_runs.store import SUBMITTED, NewRun, Store
from runs_helpers import dig, sim_clock


def _submit(day0_file, *extra):
    code, out = dig("submit", str(day0_file), "--pool", "p1", "--skip-preflight", "--yes", "--json", *extra)
    assert code == 0, out
    return json.loads(out)


def test_submit_stamps_labels_and_records(osmo, day0_file):
    osmo.scenario(banner=["OSMO CLI 6.4.0", 'A new version is available {"x": 1} (banner JSON)'])
    body = _submit(day0_file, "--priority", "LOW")
    assert body["run"].startswith("texture_defect_gen_day0-") and len(body["run"].rsplit("-", 1)[1]) == 8
    assert (
        body["workflow_id"] == "texture_defect_gen_day0-1"
    )  # parsed from the last JSON object, after banners
    (call,) = osmo.calls("workflow submit")
    argv = call["argv"]
    assert argv[argv.index("--set") + 1] == f"name={body['run']}"
    assert argv[argv.index("--pool") + 1] == "p1" and argv[argv.index("--priority") + 1] == "LOW"
    labels = [argv[i + 1] for i, a in enumerate(argv) if a == "--label"]
    assert labels == ["dig-key=day0.pcb__0603_H100__pretrained", f"dig-run={body['run']}"]
    run = Store().get(body["run"])
    assert run.record_state == SUBMITTED and run.workflow_id == body["workflow_id"]
    assert run.output_root == "s3://osmo-workflows/dig" and run.pool == "p1"
    assert Store().compiled(body["run"]) == day0_file.read_bytes()
    # a second submit of the same file gets a fresh name (never reused)
    assert _submit(day0_file)["run"] != body["run"]


def test_happy_path_submit_watch(osmo, day0_file):
    body = _submit(day0_file)
    sim, clock = sim_clock()
    code, out = dig("watch", body["run"], osmo=None, clock=clock)
    assert code == 0, out
    assert "workflow RUNNING -> COMPLETED" in out and "[completed]" in out
    assert "usd2roi-render/usd2roi-replicator - -> RUNNING  (quiet but healthy" in out
    assert all(30 <= s <= 60 for s in sim.sleeps)  # DIG flows are GPU work: 30 s, backing off to 60 s
    run = Store().get(body["run"])
    assert run.terminal_state == "COMPLETED"
    assert [s for _, s in Store().history(body["run"])] == ["SUBMITTED", "RUNNING", "COMPLETED"]
    code, out = dig("runs", "--json")
    assert json.loads(out)[0]["last_status"] == "COMPLETED"
    assert not osmo.calls("workflow cancel")


DSHM = "ERROR: /dev/shm is 8 GiB; need >= 16 GiB (32 preferred) for Kit/torch shared memory"
CASES = {
    "dshm": (
        dict(
            tasks={
                "usd2roi-replicator": {
                    "states": [["RUNNING", 1], ["FAILED", 1]],
                    "exit_code": 1,
                    "error_logs": ["[Kit] starting", DSHM],
                }
            }
        ),
        1,
        [
            "/dev/shm is 8 GiB; the pod template needs >= 16 GiB",
            "run `dig preflight pod-template`",
            "failure_modes.md C2",
        ],
    ),
    "image_pull": (
        dict(
            failure_status="FAILED_IMAGE_PULL",
            tasks={
                "image-edit": {"states": [["SCHEDULING", 1], ["FAILED_IMAGE_PULL", 1]], "exit_code": 3004}
            },
        ),
        4,
        ["the task image could not be pulled (infrastructure)", "nvcr_io REGISTRY credential"],
    ),
    "exec_timeout": (
        dict(
            failure_status="FAILED_EXEC_TIMEOUT",
            tasks={"infer-all-defects": {"states": [["RUNNING", 2], ["FAILED_EXEC_TIMEOUT", 1]]}},
        ),
        3,
        ["the group ran past its exec_timeout (canceled)", "[canceled]"],
    ),
    "upload": (
        dict(tasks={"image-edit": {"states": [["RUNNING", 1], ["FAILED", 1]], "exit_code": 2012}}),
        1,
        ["exit code 2012: OSMO could not upload the task's output"],
    ),
    "endpoint": (
        dict(
            tasks={
                "image-edit": {
                    "states": [["RUNNING", 1], ["FAILED", 1]],
                    "exit_code": 1,
                    "error_logs": ["ERROR: 0 image-edit images emitted"],
                }
            }
        ),
        1,
        ["the image-edit endpoint failed", "dig endpoint check", "failure_modes.md C18"],
    ),
    "submission": (
        dict(
            failure_status="FAILED_SUBMISSION",
            tasks={"usd2roi-replicator": {"states": [["FAILED", 1]], "exit_code": 1}},
        ),
        5,
        ["[submission]"],
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_terminal_class_is_classified(osmo, day0_file, case):
    scenario, want_code, texts = CASES[case]
    osmo.scenario(**scenario)
    body = _submit(day0_file)
    sim, clock = sim_clock()
    code, out = dig("watch", body["run"], clock=clock)
    assert code == want_code, out
    for text in texts:
        assert text in out, out
    failed = [k for k, v in scenario["tasks"].items()]
    logs = osmo.calls("workflow logs")
    assert [c["argv"][c["argv"].index("-t") + 1] for c in logs] == failed
    assert all("--error" in c["argv"] and c["argv"][c["argv"].index("-n") + 1] == "200" for c in logs)
    assert not osmo.calls("workflow cancel")


def test_failed_upstream_downstream_of_a_failed_group(osmo, day0_file):
    osmo.scenario(
        tasks={
            "usd2roi-replicator": {
                "states": [["RUNNING", 1], ["FAILED", 1]],
                "exit_code": 1,
                "error_logs": ["ERROR: 0 ROI pairs emitted under /tmp/out/crop"],
            }
        }
    )
    body = _submit(day0_file)
    sim, clock = sim_clock()
    code, out = dig("watch", body["run"], "--json", clock=clock)
    assert code == 1
    doc = json.loads(out)
    by_task = {f["task"]: f for f in doc["failures"]}
    assert by_task["usd2roi-render/usd2roi-replicator"]["ref"] == "failure_modes.md C6"
    for task in ("augment-image-edit/image-edit", "anomaly-infer/infer-all-defects"):
        assert by_task[task]["status"] == "FAILED_UPSTREAM" and by_task[task]["upstream"] == "usd2roi-render"
    assert len(osmo.calls("workflow logs")) == 1  # upstream-failed tasks have no log of their own to read


def test_28_hour_watch_survives_rate_limits_and_connection_loss(osmo, day0_file, capsys):
    """1,700 polls over a simulated 28 h; 429s and a 30-poll outage are retried, never taken for a failure."""
    body = _submit(day0_file)
    osmo.scenario(
        tasks={"infer-all-defects": {"states": [["RUNNING", 1700], ["COMPLETED", 1]]}},
        errors=[
            {"verb": "query", "from": 40, "to": 44, "exit": 75},
            {"verb": "query", "from": 900, "to": 930, "exit": 10},
        ],
    )
    from dig_runs.osmo import Osmo

    sim, clock = sim_clock()
    code, out = dig("watch", body["run"], osmo=Osmo(osmo.runner()), clock=clock)
    assert code == 0, out[-2000:]
    assert sim.t > 28 * 3600
    assert max(sim.sleeps) <= 60 and min(sim.sleeps) >= 30
    assert (
        out.count("poll rate limited (exit 75)") == 5
        and out.count("poll server/connection error (exit 10)") == 31
    )
    assert "not a run failure" in out and "FAILED" not in out
    queries = osmo.calls("workflow query")
    assert len(queries) < 28 * 3600 / 60 * 1.1  # backed off to 60 s while nothing changed
    assert [s for _, s in Store().history(body["run"])] == ["SUBMITTED", "RUNNING", "COMPLETED"]
    assert not osmo.calls("workflow cancel")


def test_label_refused_resubmits_without_labels(osmo, day0_file):
    osmo.scenario(refuse_label=True)
    body = _submit(day0_file)
    assert "does not support --label" in body["note"] and body["labels"] == {}
    calls = osmo.calls("workflow submit")
    assert len(calls) == 2 and calls[0].get("refused") == "--label" and "--label" not in calls[1]["argv"]
    assert Store().get(body["run"]).labels_dict == {}


def test_osmo_refuses_an_invalid_spec(osmo, day0_file, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(day0_file.read_text().replace("  exec_timeout: 28h", "  exec_timeout: 28 hours", 1))
    code, out = dig("submit", str(bad), "--skip-preflight", "--yes", "--json")
    assert code == 1
    body = json.loads(out)
    assert "Workflow validation failed" in body["error"]
    assert Store().get(body["run"]).record_state == "submit_failed"


def test_preflight_failure_stops_submit(osmo, day0_file, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    code, out = dig("submit", str(day0_file), "--pool", "p1", "--yes")
    assert code == 1
    assert not osmo.calls("workflow submit")
    assert osmo.calls("config show")  # the pod-template preflight asked OSMO


def test_submit_without_yes_off_a_terminal_is_refused(osmo, day0_file):
    code, _ = dig("submit", str(day0_file), "--skip-preflight")
    assert code == 2 and not osmo.calls("workflow submit")


def test_submit_compiles_overrides(osmo, capsys):
    code, out = dig(
        "submit", "flow=day0", "usecase=pcb", "knobs=smoke", "--skip-preflight", "--yes", "--json"
    )
    assert code == 0, capsys.readouterr().err
    body = json.loads(out)
    run = Store().get(body["run"])
    assert run.compile_key == "day0.pcb__0603_H100__pretrained".replace(".", "/")
    assert json.loads(run.overrides) == ["flow=day0", "usecase=pcb", "knobs=smoke"]
    assert (run.flow, run.usecase, run.board) == ("day0", "pcb", "0603_H100")
    code, _ = dig("submit", "flow=day0", "knobs.no_such_knob=1", "--skip-preflight", "--yes")
    assert code == 2
    assert "knobs.no_such_knob" in capsys.readouterr().err


def test_compiled_in_name_is_refused_twice(osmo, day0_file, tmp_path):
    named = tmp_path / "named.yaml"
    named.write_text(day0_file.read_text().replace("{{ name }}", "day0-run-1"))
    assert dig("submit", str(named), "--skip-preflight", "--yes")[0] == 0
    (call,) = osmo.calls("workflow submit")
    assert "--set" not in call["argv"]
    assert dig("submit", str(named), "--skip-preflight", "--yes")[0] == 1
    assert len(osmo.calls("workflow submit")) == 1


def test_logs_cancel_restart(osmo, day0_file, capsys):
    osmo.scenario(
        tasks={
            "usd2roi-replicator": {
                "states": [["RUNNING", 3], ["FAILED", 1]],
                "exit_code": 1,
                "logs": ["render 1", "render 2", "render 3"],
            }
        }
    )
    body = _submit(day0_file)
    code, out = dig("logs", body["run"], "--task", "usd2roi-replicator", "-n", "2")
    assert code == 0 and out == "render 2\nrender 3\n"
    assert dig("logs", body["run"], "--error")[0] == 2
    # cancel: the running pod is named; without --yes off a terminal nothing happens
    code, out = dig("cancel", body["run"])
    assert code == 2 and not osmo.calls("workflow cancel")
    assert "pod texture_defect_gen_day0-1-usd2roi-replicator-pod is RUNNING" in out
    assert "needs confirmation: not a terminal, pass --yes" in capsys.readouterr().err
    # restart: refused while running, allowed once failed
    assert dig("restart", body["run"])[0] == 1 and not osmo.calls("workflow restart")
    sim, clock = sim_clock()
    assert dig("watch", body["run"], clock=clock)[0] == 1
    assert dig("restart", body["run"])[0] == 0 and len(osmo.calls("workflow restart")) == 1
    assert dig("watch", body["run"], clock=clock)[0] == 0
    # cancel of another run, confirmed
    other = _submit(day0_file)
    assert dig("cancel", other["run"], "--yes")[0] == 0 and len(osmo.calls("workflow cancel")) == 1
    assert dig("watch", other["run"], clock=clock)[0] == 3


def test_crash_between_record_and_submit_is_resolved_by_label(osmo, day0_file):
    """A `submitting` row left by a crash: found in OSMO by label, or marked not submitted; never resubmitted."""
    store = Store()
    common = dict(
        compiled=day0_file.read_bytes(),
        compile_key="day0/pcb",
        overrides=[],
        pool="p1",
        priority=None,
        workflow_name="texture_defect_gen_day0",
        choices={},
        output_root="s3://b/dig",
    )
    for name in ("texture_defect_gen_day0-aaaaaaaa", "texture_defect_gen_day0-bbbbbbbb"):
        store.begin_submit(NewRun(run_name=name, labels={"dig-run": name}, **common))
    store.db.execute("UPDATE runs SET submitter = 'elsewhere:1'")
    # the first one reached OSMO before the crash
    subprocess.run(
        [
            "osmo",
            "workflow",
            "submit",
            str(day0_file),
            "-t",
            "json",
            "--set",
            "name=texture_defect_gen_day0-aaaaaaaa",
            "--label",
            "dig-run=texture_defect_gen_day0-aaaaaaaa",
        ],
        check=True,
        capture_output=True,
    )
    code, out = dig("runs", "--json")
    rows = {r["run_name"]: r for r in json.loads(out)}
    assert rows["texture_defect_gen_day0-aaaaaaaa"]["record_state"] == "submitted"
    assert rows["texture_defect_gen_day0-aaaaaaaa"]["workflow_id"] == "texture_defect_gen_day0-1"
    assert rows["texture_defect_gen_day0-bbbbbbbb"]["record_state"] == "not_submitted"
    assert len(osmo.calls("workflow submit")) == 1 and len(osmo.calls("workflow list")) == 2


def test_migrations_are_versioned(tmp_path):
    from dig_runs.store import MIGRATIONS

    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.executescript(MIGRATIONS[0])
    db.execute("PRAGMA user_version = 1")
    db.commit()
    db.close()
    store = Store(path)
    assert store.db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert "sweep_id" in {r[1] for r in store.db.execute("PRAGMA table_info(runs)")}


WRITER = """
import sys
from dig_runs.store import NewRun, Store
store = Store()
tag = sys.argv[1]
for i in range(150):
    name = f"run-{tag}-{i}"
    store.begin_submit(NewRun(run_name=name, compiled=b"x" * 2000, compile_key="k", overrides=[], pool=None,
                              priority=None, labels={}, workflow_name="w", choices={}, output_root=None))
    store.finish_submit(name, workflow_id=f"w-{tag}-{i}", state="submitted")
    store.observe(name, "RUNNING")
"""


def test_two_processes_write_the_record_at_once(osmo, tmp_path):
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, tag], stderr=subprocess.PIPE, text=True)
        for tag in ("a", "b")
    ]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errors
    store = Store()
    assert len(store.list()) == 300
    assert store.db.execute("SELECT count(*) FROM statuses").fetchone()[0] == 600
    assert store.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_python_m_and_help(osmo):
    proc = subprocess.run(
        [sys.executable, "-m", "dig_runs", "watch", "--help"], capture_output=True, text=True
    )
    assert proc.returncode == 0 and "exit codes (watch)" in proc.stdout and "FAILED_IMAGE_PULL" in proc.stdout
    proc = subprocess.run(
        [sys.executable, "-m", "dig_runs", "watch", "no-such-run", "--interval", "-1"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and "--interval must be > 0" in proc.stderr


def test_live_table_on_a_terminal(osmo, day0_file):
    import io

    from dig_runs.osmo import Osmo
    from dig_runs.watch import Watcher, WatchState

    body = _submit(day0_file)
    sim, clock = sim_clock()
    out = io.StringIO()
    watcher = Watcher(Osmo(osmo.runner()), Store(), clock=clock, out=out, tty=True)
    assert watcher.watch(WatchState(body["run"], body["workflow_id"], 30.0)) == 0
    frames = out.getvalue().split("\x1b[H\x1b[2J")[1:]
    assert len(frames) >= 3
    assert "GROUP/TASK" in frames[0] and "usd2roi-render/usd2roi-replicator" in frames[0]
    assert "quiet ok: Isaac Sim warmup" in out.getvalue()
    assert " -> " not in frames[0]  # a terminal gets the table, not transition lines


def test_the_compiler_does_not_import_dig_runs():
    from pathlib import Path

    compiler = Path(__file__).resolve().parents[3] / "compiler"
    # `dig VERB` names dig_runs.cli in its verb table (imported only when such a verb runs); no import
    # statement of the compiler reaches dig_runs.
    pattern = re.compile(r"^\s*(from dig_runs|import dig_runs)", re.M)
    assert not [p.name for p in compiler.rglob("*.py") if pattern.search(p.read_text(encoding="utf-8"))]


def test_two_dig_submits_at_once(osmo, day0_file):
    """Two `dig submit` processes, four submits each, one record: eight distinct runs, all completed rows."""
    loop = (
        "import sys\nfrom dig_runs.cli import main\n"
        "sys.exit(max(main(['submit', sys.argv[1], '--skip-preflight', '--yes']) for _ in range(4)))\n"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", loop, str(day0_file)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    runs = Store().list()
    assert len(runs) == 8 and {r.record_state for r in runs} == {SUBMITTED}
    assert len({r.workflow_id for r in runs}) == 8 == len(osmo.calls("workflow submit"))
