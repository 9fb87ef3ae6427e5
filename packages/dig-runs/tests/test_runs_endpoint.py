"""`dig endpoint manifest` (golden) and `dig endpoint check` against a real local HTTP server."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from runs_helpers import dig

GOLDEN = Path(__file__).resolve().parent / "golden"


def test_manifest_golden(snapshot):
    code, text = dig("endpoint", "manifest")
    assert code == 0
    snapshot.snapshot_dir = GOLDEN
    snapshot.assert_match(text, "nimservice_qwen_image_edit.yaml")


def test_manifest_facts_follow_the_endpoint_group():
    from compiler.paths import CONF_DIR

    doc = yaml.safe_load(dig("endpoint", "manifest")[1])
    url = yaml.safe_load((CONF_DIR / "endpoint" / "cluster.yaml").read_text())["url"]
    name, namespace = doc["metadata"]["name"], doc["metadata"]["namespace"]
    assert url == f"http://{name}.{namespace}.svc.cluster.local:8000/v1"
    spec = doc["spec"]
    assert spec["storage"]["sharedMemorySizeLimit"] == "32Gi"
    assert spec["args"][0] == "nvidia/Qwen-Image-Edit-NVPCB-OVSL2SL" and "--omni" in spec["args"]
    assert spec["readinessProbe"]["probe"]["httpGet"]["path"] == "/v1/models"
    assert spec["resources"]["limits"] == spec["resources"]["requests"]
    assert spec["resources"]["limits"]["nvidia.com/gpu"] == 1


def test_manifest_refuses_the_external_option(capsys):
    code, _ = dig("endpoint", "manifest", "--option", "external")
    assert code != 0


def test_check_against_a_local_server():
    from dig_stages.edit_fake_server import FakeEditServer

    with FakeEditServer() as server:
        code, out = dig("endpoint", "check", server.url, "--json")
        assert code == 0, out
        res = json.loads(out)
        assert res["ok"] and res["latency_ms"] is not None and res["latency_ms"] >= 0
        assert any(r["path"] == "/v1/models" for r in server.requests)
    with FakeEditServer(models=["qwen/qwen-image-edit-2511"]) as server:
        code, out = dig("endpoint", "check", server.url)
        assert code == 1 and "not nvidia/Qwen-Image-Edit-NVPCB-OVSL2SL" in out


def test_check_unreachable():
    code, out = dig("endpoint", "check", "http://127.0.0.1:9/v1", "--timeout", "2")
    assert code == 3 and "unreachable" in out


def test_submit_checks_a_reachable_endpoint(osmo, day0_file, tmp_path, monkeypatch):
    """A Day 0 file calls the endpoint: submit checks it when reachable; a wrong model stops the submit."""
    from dig_stages.edit_fake_server import FakeEditServer

    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    with FakeEditServer(models=["qwen/qwen-image-edit-2511"]) as server:
        wf = tmp_path / "day0.yaml"
        wf.write_text(
            day0_file.read_text().replace(
                "http://qwen-image-edit-nvpcb-ovsl2sl.osmo-nims.svc.cluster.local:8000/v1", server.url
            )
        )
        code, out = dig("submit", str(wf), "--yes")
        assert code == 1
        assert "preflight endpoint: FAIL" in out and "qwen/qwen-image-edit-2511" in out
    code, out = dig("submit", str(day0_file), "--yes")
    assert "preflight endpoint: SKIP" in out and "not reachable from here" in out
