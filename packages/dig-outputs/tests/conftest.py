"""Fixtures: synthetic run trees per flow, a moto S3 server on 127.0.0.1 holding them, a stand-in `osmo`."""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

import pytest
from dig_outputs.synthetic import RunSpec, SyntheticRun, build_run

BUCKET = "osmo-workflows"
ROOT_PREFIX = "dig"
S3_ROOT = f"s3://{BUCKET}/{ROOT_PREFIX}"

# One run per flow, named the way the stamping rule names them (endpoint_and_sizing.md §6).
RUN_NAMES = {
    "day0": "texture_defect_gen_day0-1a2b3c4d",
    "good_image": "good_image_gen-2b3c4d5e",
    "structural": "structural_defect_gen-3c4d5e6f",
    "day1": "texture_defect_gen_day1_real_alignment-4d5e6f70",
    "day1_manual_roi": "texture_defect_gen_day1_manual_roi-5e6f7081",
    "finetune": "finetune-6f708192",
}
DAY0_NO_ANOMALY = "texture_defect_gen_day0-deadbeef"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def storage_dir(tmp_path_factory) -> Path:
    """A local mirror of `<dig_url_root>`: `runs/<name>/<stage>/…` for every flow."""
    return tmp_path_factory.mktemp("storage")


@pytest.fixture(scope="session")
def runs(storage_dir) -> dict[str, SyntheticRun]:
    """Synthetic runs keyed by flow; Day 0 and Day 1 have missing outputs and masks on purpose."""
    out = {}
    for flow, name in RUN_NAMES.items():
        out[flow] = build_run(
            storage_dir / "runs" / name,
            flow,
            RunSpec(
                name=name,
                with_finetune=flow in ("day0", "finetune"),
                drop_anomaly_every=4 if flow in ("day0", "day1") else 0,
                drop_mask_every=3 if flow in ("day0", "day1", "day1_manual_roi") else 0,
            ),
        )
    out["day0_no_anomaly"] = build_run(
        storage_dir / "runs" / DAY0_NO_ANOMALY,
        "day0",
        RunSpec(name=DAY0_NO_ANOMALY, skip_stages=("anomaly",)),
    )
    return out


@pytest.fixture(scope="session")
def moto_endpoint():
    """moto's S3 server on a free 127.0.0.1 port; AWS_* point every boto3 client made later at it."""
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    mp = pytest.MonkeyPatch()
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_DEFAULT_PROFILE"):
        mp.delenv(var, raising=False)
    mp.setenv("AWS_ENDPOINT_URL", url)
    mp.setenv("AWS_ACCESS_KEY_ID", "testing")
    mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    mp.setenv("AWS_REGION", "us-east-1")
    # Keep the host's ~/.aws out of the tests.
    mp.setenv("AWS_CONFIG_FILE", os.devnull)
    mp.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    yield url
    mp.undo()
    server.stop()


@pytest.fixture(scope="session")
def s3_root(moto_endpoint, runs, storage_dir) -> str:
    """`s3://osmo-workflows/dig` holding every synthetic run (uploaded once per session)."""
    import boto3

    client = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    for path in sorted((storage_dir / "runs").rglob("*")):
        if path.is_file():
            key = f"{ROOT_PREFIX}/{path.relative_to(storage_dir).as_posix()}"
            client.put_object(Bucket=BUCKET, Key=key, Body=path.read_bytes())
    return S3_ROOT


OSMO_STANDIN = """#!/bin/sh
# Stand-in for the OSMO CLI: records its arguments and prints a recorded log.
echo "$*" >> "$OSMO_ARGS_LOG"
if [ "$1 $2" != "workflow logs" ]; then echo "unexpected: $*" >&2; exit 9; fi
if [ "$5" = "finetune" ]; then echo "task finetune not found" >&2; exit 1; fi
echo "[recorded] workflow $3 task $5 (lines $7)"
echo "INFO: done"
"""


@pytest.fixture
def osmo_bin(tmp_path, monkeypatch) -> Path:
    """A stand-in `osmo` first on PATH; its argument lines land in the returned file."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    exe = bindir / "osmo"
    exe.write_text(OSMO_STANDIN)
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    args_log = tmp_path / "osmo-args.txt"
    monkeypatch.setenv("OSMO_ARGS_LOG", str(args_log))
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}")
    return args_log
