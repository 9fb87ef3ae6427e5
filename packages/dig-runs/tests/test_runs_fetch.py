"""`dig fetch`: dig-outputs on a recorded run, from its compiled workflow, with each task's log."""

from __future__ import annotations

import json
import os
import socket
import zipfile

import pytest
from runs_helpers import dig, sim_clock


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def moto_s3(monkeypatch):
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=_free_port(), verbose=False)
    server.start()
    url = f"http://127.0.0.1:{server._port}"
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    for var, value in (
        ("AWS_ENDPOINT_URL", url),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_CONFIG_FILE", os.devnull),
        ("AWS_SHARED_CREDENTIALS_FILE", os.devnull),
    ):
        monkeypatch.setenv(var, value)
    yield url
    server.stop()


def test_happy_path_submit_watch_fetch(osmo, day0_file, moto_s3, tmp_path):
    import boto3
    from dig_outputs.synthetic import RunSpec, build_run

    code, out = dig("submit", str(day0_file), "--pool", "p1", "--skip-preflight", "--yes", "--json")
    assert code == 0
    run = json.loads(out)["run"]
    sim, clock = sim_clock()
    assert dig("watch", run, clock=clock)[0] == 0
    # the run's outputs, as the pods would have written them under <dig_url_root>/runs/<run>/
    local = tmp_path / "storage"
    build_run(local / "runs" / run, "day0", RunSpec(name=run))
    client = boto3.client("s3", endpoint_url=moto_s3, region_name="us-east-1")
    client.create_bucket(Bucket="osmo-workflows")
    for path in sorted(local.rglob("*")):
        if path.is_file():
            client.put_object(
                Bucket="osmo-workflows",
                Key=f"dig/{path.relative_to(local).as_posix()}",
                Body=path.read_bytes(),
            )
    dest = tmp_path / "out"
    code, out = dig("fetch", run, "--download", "--preview", "--dest", str(dest), "--json")
    assert code == 0, out
    body = json.loads(out)
    with zipfile.ZipFile(body["download"]) as zf:
        names = zf.namelist()
    assert any(n.endswith("logs/infer-all-defects.log") for n in names)
    assert any("/anomaly/" in n for n in names)
    assert body["preview"].endswith("index.html")
    logs = osmo.calls("workflow logs")
    assert {c["argv"][c["argv"].index("-t") + 1] for c in logs} >= {"usd2roi-replicator", "infer-all-defects"}


def test_fetch_unknown_run(osmo, capsys):
    assert dig("fetch", "nope")[0] == 2
    assert "no run or workflow id 'nope'" in capsys.readouterr().err
