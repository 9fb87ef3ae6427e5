"""Fuzz `python -m dig_outputs` arguments (issue 12): a clean error or a result, never a traceback,
and nothing written outside the destination. Derandomized; `DIG_FUZZ_EXAMPLES=N` for a larger run."""

from __future__ import annotations

import contextlib
import io
import os
import socket
from pathlib import Path

import pytest
from dig_outputs.__main__ import main
from dig_outputs.synthetic import RunSpec, build_run, golden_workflow
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

EXAMPLES = int(os.environ.get("DIG_FUZZ_EXAMPLES", "200"))

nasty = st.one_of(
    st.text(max_size=30),
    st.sampled_from(
        [
            "",
            "-",
            "..",
            "../../../escape",
            "a b;rm",
            "$(id)",
            "{{ name }}",
            "é",
            "0",
            "-5",
            "99999",
            "x/y",
            "/etc",
            "s3://b/dig",
            "s3://b/../x",
            "gs://b",
            "anomaly",
            "augment,anomaly",
            "run-1",
        ]
    ),
)
SEGMENTS = st.sampled_from(["a", "b", "..", ".", "x y", "é", "FILE", "outputs"])
FLAGS = ["--root", "--only", "--jobs", "--samples", "--workflow-id", "--endpoint-url", "--region"]


@st.composite
def argv(draw):
    cmd = draw(st.sampled_from(["download", "preview"]))
    # Mostly valid inputs with one or two hostile values, so both the error paths and the writing
    # paths are exercised.
    wf = st.sampled_from(["WF"] * 6 + ["WF_GLASS", "NOUTF8", "BAD", "SETUP", "DIR"])
    out = [cmd, "--workflow", draw(st.one_of(wf, wf, wf, nasty))]
    if draw(st.integers(0, 4)):
        out += ["--local", draw(st.one_of(st.just("RUN"), st.just("RUN"), st.just("STORE"), nasty))]
    if "STORE" in out or draw(st.integers(0, 3)) == 0:
        out += ["--name", draw(st.one_of(st.just("run-1"), st.just("run-1"), nasty))]
    if draw(st.booleans()):
        out += ["--dest", "/".join(draw(st.lists(SEGMENTS, min_size=1, max_size=3)))]
    for _ in range(draw(st.integers(0, 3))):
        flag = draw(st.sampled_from(FLAGS))
        if (flag in ("--only", "--jobs", "--workflow-id") and cmd != "download") or (
            flag == "--samples" and cmd != "preview"
        ):
            continue
        out += [flag, draw(nasty)]
    for flag in ("--force", "--allow-missing"):
        if draw(st.booleans()) and (flag == "--force" or cmd == "download"):
            out.append(flag)
    return out


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    store = root / "store"
    build_run(store / "runs" / "run-1", "good_image", RunSpec(name="run-1", size=(16, 12), per_cell=1))
    return root


@pytest.fixture
def sandbox(tree, tmp_path, monkeypatch):
    box = tmp_path / "box"
    work = box / "l1" / "l2" / "l3" / "work"  # deep enough that three `..` stay inside the box
    work.mkdir(parents=True)
    (work / "WF").write_text(golden_workflow("good_image").read_text())
    (work / "WF_GLASS").write_text((golden_workflow("day1").parent / "glass__pretrained.yaml").read_text())
    (work / "SETUP").write_text((golden_workflow("day0").parents[1] / "setup/pcb.yaml").read_text())
    (work / "NOUTF8").write_bytes(b"\xff\xfe")
    (work / "BAD").write_text("workflow: [")
    (work / "DIR").mkdir()
    (work / "FILE").write_text("a user's file")
    os.symlink(tree / "store" / "runs" / "run-1", work / "RUN")
    os.symlink(tree / "store", work / "STORE")
    monkeypatch.chdir(work)
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{_closed_port()}")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "fuzz")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "fuzz")
    monkeypatch.setenv("PATH", "/nonexistent")  # no osmo: logs are skipped with a note
    return box, work


def _files(box: Path) -> dict[str, bytes | None]:
    return {
        str(p): (p.read_bytes() if p.is_file() and not p.is_symlink() else None)
        for p in box.rglob("*")
        if "store" not in p.parts
    }


@settings(
    max_examples=EXAMPLES,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(args=argv())
def test_fuzz_outputs_arguments(sandbox, tree, args):
    box, work = sandbox
    before = _files(box)
    store_before = sorted(str(p) for p in tree.rglob("*"))
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(args)
        except SystemExit as exc:  # argparse usage errors
            code = exc.code
    text = out.getvalue() + err.getvalue()
    event(f"{args[0]} exit {code}")
    assert code in (0, 1, 2, 3), (args, code, text[-500:])
    assert "Traceback" not in text
    if code != 0:
        assert "error" in text.lower(), (args, text[-500:])
    assert sorted(str(p) for p in tree.rglob("*")) == store_before, args  # the run itself is never touched
    after = _files(box)
    # Only new paths, and only under the destination (--dest, else ./outputs/); nothing existing changed.
    dest = args[args.index("--dest") + 1] if "--dest" in args else "outputs"
    dest_path = (work / dest).resolve()
    for path, data in before.items():
        if not str(Path(path).resolve()).startswith(str(dest_path)):
            assert after.get(path, b"gone") == data, (args, path)
    for path in set(after) - set(before):
        new = Path(path).resolve()
        # Under the destination, or a directory created on the way to it (mkdir -p).
        assert new == dest_path or dest_path in new.parents or (new in dest_path.parents and new.is_dir()), (
            args,
            path,
        )
    # Leave the box as found for the next example.
    import shutil

    for path in sorted(set(after) - set(before), key=len, reverse=True):
        p = Path(path)
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
    for path, data in before.items():
        if data is not None and Path(path).read_bytes() != data:
            Path(path).write_bytes(data)
