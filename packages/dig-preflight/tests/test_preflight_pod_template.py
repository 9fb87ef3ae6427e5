"""`pod-template` from recorded JSON (files and a stand-in osmo): each exit code 0-4 and the printed patch."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from dig_preflight.cli import main
from dig_preflight.pod_template import parse_quantity

FIXTURES = Path(__file__).parent / "fixtures"


def fixture_text(name: str) -> str:
    return (FIXTURES / name).read_text()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("32Gi", 32 * 2**30),
        ("16Gi", 16 * 2**30),
        ("32G", 32 * 10**9),
        ("32768Mi", 32 * 2**30),
        ("1.5Ti", int(1.5 * 2**40)),
        ("1024", 1024),
        ("32 Gi", None),
        ("32GB", None),
        ("", None),
    ],
)
def test_preflight_quantity_parsing(value, expected):
    assert parse_quantity(value) == expected


def test_preflight_pod_template_verified(capsys):
    code = main(["pod-template", "--file", str(FIXTURES / "pod_template_ok.json")])
    out = capsys.readouterr().out
    assert code == 0
    assert "OK      nvoptix volume" in out and "32.0 GiB >= 16 GiB" in out
    assert "Patch" not in out


def test_preflight_pod_template_needs_patch_prints_patch(capsys):
    code = main(["pod-template", "--file", str(FIXTURES / "pod_template_needs_patch.json")])
    out = capsys.readouterr().out
    assert code == 1
    assert "no volume named 'nvoptix'" in out and "8.0 GiB < 16 GiB" in out
    patch = out.split("Patch (review with the user first", 1)[1]
    added = [ln for ln in patch.splitlines() if ln.startswith("+") and not ln.startswith("+++")]
    assert any('"/usr/share/nvidia/nvoptix.bin"' in ln for ln in added)
    assert any('"sizeLimit": "32Gi"' in ln for ln in added)
    assert any('"8Gi"' in ln for ln in patch.splitlines() if ln.startswith("-"))


def test_preflight_pod_template_patch_fixes_the_template(capsys, tmp_path):
    main(["pod-template", "--file", str(FIXTURES / "pod_template_needs_patch.json"), "--json"])
    patched = json.loads(capsys.readouterr().out)["patched_template"]
    fixed = tmp_path / "patched.json"
    fixed.write_text(json.dumps(patched))
    assert main(["pod-template", "--file", str(fixed)]) == 0  # applying the printed patch verifies
    user = patched["default_user"]["spec"]
    mounts = {m["name"]: m["mountPath"] for m in user["containers"][0]["volumeMounts"]}
    assert mounts == {"dshm": "/dev/shm", "nvoptix": "/usr/share/nvidia/nvoptix.bin"}


def test_preflight_pod_template_wrong_path_and_binary_units(capsys):
    code = main(
        ["pod-template", "--file", str(FIXTURES / "pod_template_wrong_nvoptix_decimal_dshm.json"), "--json"]
    )
    report = json.loads(capsys.readouterr().out)
    assert code == 1
    rows = {c["name"]: c for c in report["checks"]}
    assert (
        rows["nvoptix volume"]["status"] == "fail"
        and "/usr/lib/nvoptix.bin" in rows["nvoptix volume"]["detail"]
    )
    # 32768Mi is 32 GiB: accepted (the upstream shell rejected anything not ending in a bare Gi).
    assert rows["/dev/shm size"]["status"] == "ok"


def test_preflight_pod_template_min_dshm(capsys):
    assert (
        main(["pod-template", "--file", str(FIXTURES / "pod_template_ok.json"), "--min-dshm-gib", "64"]) == 1
    )
    assert "32.0 GiB < 64 GiB" in capsys.readouterr().out


OSMO_CASES = [
    ((0, fixture_text("pod_template_ok.json"), ""), 0, "nvoptix volume"),
    ((0, fixture_text("pod_template_needs_patch.json"), ""), 1, "Patch"),
    ((1, "", "Error: server responded with status 403: Forbidden\n"), 2, "ask the user"),
    ((1, "", "Error: 409 Conflict: config CLI disabled\n"), 3, "gate skipped"),
    ((1, "", "Error: connection refused\n"), 4, "connection refused"),
    ((0, "POD_TEMPLATE:\n  default_user: ...\n", ""), 4, "not JSON"),
]


@pytest.mark.parametrize(
    ("answer", "code", "text"), OSMO_CASES, ids=["ok", "patch", "403", "409", "other", "not-json"]
)
def test_preflight_pod_template_via_osmo(capsys, osmo_stub, answer, code, text):
    bindir = osmo_stub({"config show POD_TEMPLATE": answer})
    assert main(["pod-template"]) == code
    out = capsys.readouterr().out
    assert text in out
    assert (bindir / "calls.log").read_text().splitlines() == ["config show POD_TEMPLATE"]


def test_preflight_pod_template_without_osmo(capsys, no_osmo, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing at all on PATH
    assert main(["pod-template", "--json"]) == 4
    assert "osmo CLI not on PATH" in capsys.readouterr().out


def test_preflight_pod_template_bad_args_are_exit_4(capsys):
    assert (
        main(["pod-template", "--file", str(FIXTURES / "pod_template_ok.json"), "--min-dshm-gib", "0"]) == 4
    )
    assert main(["pod-template", "--file", str(FIXTURES / "nope.json")]) == 4
    assert (
        main(["pod-template", "--file", str(FIXTURES / "pod_template_ok.json"), "--template-name", "x"]) == 4
    )


def test_preflight_pod_template_train_checks_only_dshm(capsys, tmp_path):
    # A template with /dev/shm but no nvoptix volume: fine for training pods, a patch for render pods.
    doc = json.loads(fixture_text("pod_template_needs_patch.json"))
    doc["default_user"]["spec"]["volumes"] = [
        v if v.get("name") != "dshm" else {**v, "emptyDir": {"medium": "Memory", "sizeLimit": "32Gi"}}
        for v in doc["default_user"]["spec"]["volumes"]
    ]
    path = tmp_path / "shm_only.json"
    path.write_text(json.dumps(doc))
    assert main(["pod-template", "--file", str(path), "--checks", "train"]) == 0
    out = capsys.readouterr().out
    assert "SKIP    nvoptix volume" in out and "32.0 GiB >= 16 GiB" in out
    assert main(["pod-template", "--file", str(path)]) == 1
    assert "no volume named 'nvoptix'" in capsys.readouterr().out
