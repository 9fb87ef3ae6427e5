"""User preferences: only the allowed keys persist, written atomically outside the repo; the CLI wins."""

from __future__ import annotations

import pytest
import yaml

from compiler.errors import DigError
from compiler.prefs import load_prefs, main


@pytest.fixture
def prefs_file(tmp_path, monkeypatch):
    path = tmp_path / "cfg" / "prefs.yaml"
    monkeypatch.setenv("DIG_PREFERENCES", str(path))
    return path


def test_set_show_unset(prefs_file, capsys):
    assert main(["set", "dig_url_root=s3://team/dig", "pool=gpu-a"]) == 0
    assert yaml.safe_load(prefs_file.read_text()) == {"dig_url_root": "s3://team/dig", "pool": "gpu-a"}
    assert main([]) == 0 and "pool: gpu-a" in capsys.readouterr().out
    assert main(["unset", "pool"]) == 0
    assert load_prefs() == {"dig_url_root": "s3://team/dig"}


@pytest.mark.parametrize(
    "args, text",
    [
        (["set", "image_edit_model=qwen"], "cannot be saved"),
        (["set", "dig_url_root=/local/dir"], "is not a storage prefix"),
        (["set", "pool"], "expected key=value"),
    ],
)
def test_refuses_what_may_not_persist(prefs_file, capsys, args, text):
    assert main(args) == 1
    assert text in capsys.readouterr().err
    assert not prefs_file.exists()


def test_unknown_key_in_file_is_an_error_with_did_you_mean(prefs_file):
    prefs_file.parent.mkdir(parents=True)
    prefs_file.write_text("dig_url_rot: s3://x/y\n")
    with pytest.raises(DigError) as info:
        load_prefs()
    assert "did you mean 'dig_url_root'" in info.value.format()


def test_external_endpoint_preference_selects_the_external_endpoint(compile_args):
    compiled = compile_args("flow=good_image", prefs={"external_endpoint_url": "https://edit.example.com/v1"})
    assert compiled.choices["endpoint"] == "external"
    assert "IMAGE_EDIT_ENDPOINT: https://edit.example.com/v1" in compiled.text
    cluster = compile_args(
        "flow=good_image", "endpoint=cluster", prefs={"external_endpoint_url": "https://e/v1"}
    )
    assert "svc.cluster.local:8000/v1" in cluster.text
