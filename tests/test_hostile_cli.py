"""Hostile and sloppy input through the command line (issue 12): clean errors, nothing written that should not be."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def run(
    module: str, *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess:
    path = os.pathsep.join([str(REPO), str(REPO / "packages" / "dig-stages")])
    base = {**os.environ, "DIG_PREFERENCES": "/dev/null", "PYTHONPATH": path}
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd,
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def clean_error(res: subprocess.CompletedProcess, key: str, code: int = 1) -> None:
    assert res.returncode == code, (res.returncode, res.stdout, res.stderr)
    assert "Traceback" not in res.stderr + res.stdout
    assert f"{key}:" in res.stderr or key in res.stderr, res.stderr


# --- where output goes ---------------------------------------------------------------------------------


@pytest.mark.parametrize("module", ["compiler", "compiler.plan"])
@pytest.mark.parametrize(
    "make, out, why",
    [
        (lambda d: (d / "dir").mkdir(), "dir", "is a directory"),
        (lambda d: None, "newdir/", "names a directory"),
        (lambda d: (d / "file").write_text("x"), "file/x.yaml", "not a directory"),
        (lambda d: None, "a" * 300 + ".yaml", "too long"),
        (lambda d: None, "/proc/dig.yaml", "under /proc"),
        (lambda d: None, "/sys/dig.yaml", "under /sys"),
        (lambda d: None, "/dev/null", "not a regular file"),
        (lambda d: (d / "link").symlink_to("/dev/null"), "link", "not a regular file"),
    ],
)
def test_bad_destinations_are_clean_errors_and_write_nothing(tmp_path, module, make, out, why):
    make(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    res = run(module, "flow=setup", f"out={out}", cwd=tmp_path)
    clean_error(res, "out")
    assert why in res.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_out_list_is_refused_and_home_is_expanded(tmp_path):
    res = run("compiler", "flow=setup", "out=[a,b]", cwd=tmp_path)
    clean_error(res, "out")
    assert list(tmp_path.iterdir()) == []
    res = run("compiler", "flow=setup", "out=~/x.yaml", cwd=tmp_path, env={"HOME": str(tmp_path)})
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().splitlines()[-1] == str(tmp_path / "x.yaml")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_read_only_directory_is_a_clean_error(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    res = run("compiler", "flow=setup", f"out={ro}/x.yaml", cwd=tmp_path)
    clean_error(res, "out")
    assert list(ro.iterdir()) == []


def test_same_group_twice_is_refused(tmp_path):
    res = run("compiler", "flow=day0", "flow=day1", cwd=tmp_path)
    clean_error(res, "flow")
    assert "given twice" in res.stderr


# --- compiler.schema -----------------------------------------------------------------------------------


@pytest.mark.parametrize("args, code", [(["--help"], 0), (["--bogus"], 2), (["-x"], 2)])
def test_schema_help_and_unknown_flags_write_nothing(tmp_path, args, code):
    schema = REPO / "compiler" / "schemas" / "config.schema.json"
    before = schema.stat().st_mtime_ns, schema.read_bytes()
    res = run("compiler.schema", *args, cwd=tmp_path)
    assert res.returncode == code, res.stderr
    assert "Traceback" not in res.stderr
    assert (schema.stat().st_mtime_ns, schema.read_bytes()) == before
    if code == 0:
        assert "--check" in res.stdout


# --- values --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "override, key, why",
    [
        ("endpoint.url=http://h:99999/v1", "endpoint.url", "Port out of range"),
        ("endpoint.url=http://../v1", "endpoint.url", "not a DNS name"),
        ("endpoint.url=http://-/v1", "endpoint.url", "not a DNS name"),
        ("dig_url_root=s3://b", "dig_url_root", "S3's naming rules"),
        ("dig_url_root=s3://Bad_Bucket/dig", "dig_url_root", "S3's naming rules"),
        ("dig_url_root=s3://b-/dig", "dig_url_root", "S3's naming rules"),
        ("dig_url_root=s3://" + "a" * 300, "dig_url_root", "S3's naming rules"),
        ("dig_url_root=s3://bucket/../../etc", "dig_url_root", "'..' path segment"),
    ],
)
def test_bad_urls_are_refused(tmp_path, override, key, why):
    res = run(
        "compiler",
        "flow=day0",
        "endpoint=external",
        "endpoint.url=https://edit.example.com/v1",
        override,
        f"out={tmp_path}/w.yaml",
        cwd=tmp_path,
    )
    clean_error(res, key)
    assert why in res.stderr
    assert list(tmp_path.iterdir()) == []


def test_ipv6_endpoint_is_accepted(tmp_path):
    res = run(
        "compiler",
        "flow=day0",
        "endpoint=external",
        "endpoint.url='http://[::1]:8000/v1'",
        f"out={tmp_path}/w.yaml",
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stderr
    assert "http://[::1]:8000/v1" in (tmp_path / "w.yaml").read_text()


# --- preferences ---------------------------------------------------------------------------------------


def test_broken_preferences_files_are_errors_naming_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"pool: \xff\xfe\n")
    board = tmp_path / "board.yaml"
    board.write_text('default_board: "../x"\n')
    for prefs, words in ((bad, "not UTF-8"), (tmp_path, "is a directory"), (board, "not a board")):
        res = run(
            "compiler",
            "flow=setup",
            f"out={tmp_path}/w.yaml",
            cwd=tmp_path,
            env={"DIG_PREFERENCES": str(prefs)},
        )
        clean_error(res, "preferences")
        assert str(prefs.name) in res.stderr and words in res.stderr, res.stderr
        assert not (tmp_path / "w.yaml").exists()


@pytest.mark.parametrize(
    "value, key",
    [
        ("pool=p;rm", "pool"),
        ("external_endpoint_url=file:///etc/passwd", "external_endpoint_url"),
        ("dig_url_root=s3://Bad_Bucket/x", "dig_url_root"),
        ("default_board=../x", "default_board"),
    ],
)
def test_prefs_set_checks_values_like_the_compiler(tmp_path, value, key):
    prefs = tmp_path / "p.yaml"
    res = run("compiler.prefs", "set", value, cwd=tmp_path, env={"DIG_PREFERENCES": str(prefs)})
    clean_error(res, f"preferences.{key}")
    assert not prefs.exists()


def test_prefs_help_goes_to_stdout(tmp_path):
    res = run("compiler.prefs", "--help", cwd=tmp_path)
    assert res.returncode == 0 and "prefs set" in res.stdout and res.stderr == ""


# --- semantic diff -------------------------------------------------------------------------------------

HELLO = """workflow:
  name: hello-osmo
  tasks:
  - name: hello
    image: {image}
    command: [{command}]
    args: ["Hello from OSMO!"]
{extra}"""


def test_diff_sees_changes_in_the_tasks_form(tmp_path):
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text(HELLO.format(image="ubuntu:24.04", command="echo", extra=""))
    b.write_text(HELLO.format(image="evil/image:latest", command="rm", extra="    checkpoint: []\n"))
    res = run("compiler.diff", str(a), str(b), cwd=tmp_path)
    assert res.returncode == 1, res.stdout
    assert "image: `ubuntu:24.04` → `evil/image:latest`" in res.stdout
    assert "command[0]: `echo` → `rm`" in res.stdout
    assert "- : " not in res.stdout and "checkpoint: `<absent>` → `[]`" in res.stdout


def test_diff_matches_inputs_by_meaning(tmp_path):
    doc = """workflow:
  name: w
  groups:
  - name: a
    tasks:
    - {{name: t0, image: x, command: [a]}}
    - {{name: t1, image: x, command: [a]}}
  - name: b
    tasks:
    - {{name: t, image: x, command: [a], inputs: {inputs}}}
"""
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text(doc.format(inputs="[{task: t0}, {task: t1}]"))
    b.write_text(doc.format(inputs="[{task: t1}]"))
    res = run("compiler.diff", str(a), str(b), cwd=tmp_path)
    assert res.returncode == 1
    assert 'inputs task t0: `{"task": "t0"}` → `<absent>`' in res.stdout
    assert "t1" not in res.stdout.split("inputs task t0")[1]


# --- sweeps --------------------------------------------------------------------------------------------


def test_huge_sweep_is_refused_before_writing(tmp_path):
    import hashlib

    args = ["flow=day0", "knobs.num_sdg=range(1,100001)"]
    target = REPO / "build" / "sweeps" / hashlib.sha256("\n".join(args).encode()).hexdigest()[:12]
    res = run("compiler", "-m", *args, cwd=tmp_path, timeout=60)
    clean_error(res, "sweep")
    assert "100000 variants" in res.stderr and "GiB" in res.stderr and "--yes" in res.stderr
    assert not target.exists()


def _children(pid: int) -> set[int]:
    kids: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        kids |= {int(k) for k in (task / "children").read_text().split()}
    return kids


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("sig", ["SIGTERM", "SIGKILL"])
def test_sweep_workers_stop_with_the_parent_and_leave_no_partial_file(tmp_path, sig):
    import hashlib
    import shutil
    import signal
    import time

    args = ["flow=day0", f"knobs.num_sdg=range(1,{900 + (sig == 'SIGKILL')})", f"name=sig-{sig.lower()}"]
    target = REPO / "build" / "sweeps" / hashlib.sha256("\n".join(args).encode()).hexdigest()[:12]
    shutil.rmtree(target, ignore_errors=True)
    path = os.pathsep.join([str(REPO), str(REPO / "packages" / "dig-stages")])
    env = {**os.environ, "DIG_PREFERENCES": "/dev/null", "PYTHONPATH": path}
    proc = subprocess.Popen(
        [sys.executable, "-m", "compiler", "-m", *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(list(target.glob("*.yaml"))) < 20:
            time.sleep(0.05)
        workers = _children(proc.pid)
        assert workers, "the sweep should run a process pool"
        proc.send_signal(getattr(signal, sig))
        proc.communicate(timeout=30)
        assert proc.returncode in (143, -9), proc.returncode
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(_alive(w) for w in workers):
            time.sleep(0.05)
        assert not any(_alive(w) for w in workers), "pool workers outlived the parent"
        written = sorted(p.name for p in target.iterdir())
        assert not [n for n in written if n.endswith(".tmp")], written
        assert len(written) < 899 and "sweep.json" not in written
        time.sleep(0.5)
        assert sorted(p.name for p in target.iterdir()) == written, "something kept writing"
    finally:
        if proc.poll() is None:
            proc.kill()
        shutil.rmtree(target, ignore_errors=True)


def test_sweep_index_keeps_notices_and_whole_errors(tmp_path):
    import hashlib
    import json
    import shutil

    args = ["flow=day0", "knobs.render_patches=0,2", "name=sweep-index-test"]
    target = REPO / "build" / "sweeps" / hashlib.sha256("\n".join(args).encode()).hexdigest()[:12]
    try:
        res = run("compiler", "-m", *args, cwd=tmp_path)
        assert res.returncode == 1
        index = json.loads((target / "sweep.json").read_text())
        failed, ok = index["results"]
        assert failed["error"].count("\n") >= 1 and "got:" in failed["error"]
        assert any("unconfirmed storage root" in n for n in ok["notices"])
        assert "got:" in res.stderr  # the CLI prints the whole error too
    finally:
        shutil.rmtree(target, ignore_errors=True)


# --- offline validator ---------------------------------------------------------------------------------


def _alias_bomb() -> str:
    lines = ["workflow:", "  name: w", "  a: &a [x, x, x, x, x, x, x, x, x]"]
    for i in range(8):
        prev, cur = chr(97 + i), chr(98 + i)
        lines.append(f"  {cur}: &{cur} [{', '.join(['*' + prev] * 9)}]")
    return "\n".join(lines) + "\n  tasks: [{name: t, image: x, command: [a]}]\n"


@pytest.mark.parametrize(
    "text, words",
    [
        (_alias_bomb(), "alias bomb"),
        (
            "workflow:\n  name: \"{{ 'x' * 10**9 }}\"\n  tasks: [{name: t, image: ubuntu, command: [echo]}]\n"
            "default-values: {a: 1}\n",
            "memory limit of 100 MiB",
        ),
        (
            'workflow:\n  name: "w{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}"\n'
            "  tasks: [{name: t, image: ubuntu, command: [echo]}]\ndefault-values: {a: 1}\n",
            "time limit of 0.5 s",
        ),
    ],
)
def test_validator_limits_name_the_limit(tmp_path, text, words):
    import time

    path = tmp_path / "w.yaml"
    path.write_text(text)
    started = time.monotonic()
    res = run("compiler.validate", str(path), cwd=tmp_path, timeout=60)
    assert time.monotonic() - started < 20
    assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr
    assert words in res.stdout, res.stdout


def test_validator_reports_every_error_in_one_pass(tmp_path):
    path = tmp_path / "w.yaml"
    path.write_text(
        "workflow:\n  name: \"{{ a }}\"\n  resources:\n    default: {memory: 1GB, storage: '64'}\n"
        '  tasks: [{name: t, image: "{{ img }}", command: [echo]}]\ndefault-values: {a: 1}\n'
    )
    res = run("compiler.validate", str(path), cwd=tmp_path)
    assert res.returncode == 1
    assert "'img' is undefined" in res.stdout
    assert "resources.default.memory" in res.stdout and "'1GB'" in res.stdout
    assert "storage '64' is 64 bytes" in res.stdout and "whole Ki, truncating" in res.stdout


def test_memory_without_unit_is_an_error_and_version_a_warning(tmp_path):
    path = tmp_path / "w.yaml"
    path.write_text(
        "version: 3\nworkflow:\n  name: w\n  resources:\n    default: {memory: '64'}\n"
        "  tasks: [{name: t, image: ubuntu, command: [echo]}]\ndefault-values: {a: 1}\n"
    )
    res = run("compiler.validate", str(path), cwd=tmp_path)
    assert res.returncode == 1
    assert "memory '64' is 64 bytes" in res.stdout and "> 0" in res.stdout
    assert "version: warning:" in res.stdout
