"""Fuzz `python -m dig_preflight` arguments (issue 12): a clean error or an accepted run, never a traceback.

Derandomized; `DIG_FUZZ_EXAMPLES=N` for a larger run. Storage points at a closed local port with
one attempt, so an accepted request ends in exit 3 (unreachable) without leaving the machine.
"""

from __future__ import annotations

import contextlib
import io
import os
import socket
from pathlib import Path

import pytest
from dig_preflight.cli import main
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

EXAMPLES = int(os.environ.get("DIG_FUZZ_EXAMPLES", "200"))
GOLDEN = Path(__file__).resolve().parents[3] / "golden"
EXITS = {
    "urls": {0, 1, 2, 3},
    "workflow": {0, 1, 2, 3},
    "credentials": {0, 1, 2, 4},
    "pod-template": {0, 1, 2, 3, 4},
}

nasty = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        [
            "",
            "-",
            "--",
            "..",
            "../../x",
            "a b;rm",
            "$(id)",
            "{{ name }}",
            "\x00",
            "é",
            "0",
            "-5",
            "99999",
            "file:///etc",
            "http://h:99999",
            "http://[::1]:8000",
            "s3://b/../../etc",
            "gs://b/x",
            "day0",
            "day1",
            "pcb",
            "glass",
            "1152819000",
            "0603_H100",
            "../../etc",
            "knobs.num_sdg=15.0",
            "knobs.no_such=1",
            "flow=day1",
            "name=../x",
            "a=b=c",
            "[1,2",
            "true",
        ]
    ),
)
FLAGS = {
    "urls": [
        "--flow",
        "--usecase",
        "--board",
        "--root",
        "--name",
        "--endpoint-url",
        "--max-attempts",
        "--region",
    ],
    "workflow": ["--name", "--endpoint-url", "--max-attempts", "--profile"],
    "credentials": [],
    "pod-template": ["--file", "--min-dshm-gib", "--template-name", "--checks"],
}


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@st.composite
def argv(draw):
    cmd = draw(st.sampled_from(sorted(FLAGS)))
    out = [cmd]
    if cmd == "workflow":
        out.append(draw(st.one_of(st.sampled_from(["WF", "BAD", "NOUTF8", "DIR", "missing.yaml"]), nasty)))
    if cmd == "urls" and draw(st.booleans()):
        out += ["--flow", draw(st.sampled_from(["day0", "day1", "structural", "setup", "finetune"]))]
    for _ in range(draw(st.integers(0, 4))):
        flag = draw(st.sampled_from(FLAGS[cmd] or ["--json"]))
        out += [flag, draw(nasty)] if flag != "--json" else [flag]
    if cmd == "urls" and draw(st.booleans()):
        out.append(draw(nasty))  # an override
    if cmd in ("credentials", "workflow"):
        out.append("--no-osmo")
    return out


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    work = tmp_path / "w"
    work.mkdir()
    (work / "WF").write_text((GOLDEN / "day1/pcb__1152819000__pretrained.yaml").read_text())
    (work / "BAD").write_text("workflow: [")
    (work / "NOUTF8").write_bytes(b"\xff\xfe")
    (work / "DIR").mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{_closed_port()}")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "fuzz")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "fuzz")
    monkeypatch.setenv("DIG_PREFERENCES", os.devnull)
    monkeypatch.setenv("PATH", "/nonexistent")  # no osmo: pod-template / credentials fail cleanly offline
    monkeypatch.delenv("HF_TOKEN", raising=False)
    return tmp_path


@settings(
    max_examples=EXAMPLES,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(args=argv())
def test_fuzz_preflight_arguments(sandbox, args):
    before = sorted(str(p) for p in sandbox.rglob("*"))
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(args)
        except SystemExit as exc:  # argparse: usage errors exit 2, --help 0
            code = exc.code
    assert code in EXITS[args[0]], (args, code, err.getvalue()[-500:])
    text = out.getvalue() + err.getvalue()
    event(f"{args[0]} exit {code}")
    assert "Traceback" not in text
    if code == 2 and args[0] in ("urls", "workflow"):
        assert "error" in text.lower(), (args, text[-500:])
    assert sorted(str(p) for p in sandbox.rglob("*")) == before, args  # read-only: nothing written
