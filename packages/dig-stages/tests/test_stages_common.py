"""_common helpers, pod preflights and input location, and the no-Jinja-markers rule."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from dig_stages import _common, pod

PKG = Path(__file__).resolve().parents[1] / "dig_stages"


def test_no_jinja_markers_in_any_module():
    # OSMO renders injected files through Jinja twice: these markers would be evaluated
    bad = []
    for path in sorted(PKG.glob("*.py")):
        text = path.read_text(encoding="utf-8")
        for marker in ("{" + "{", "{" + "%", "{" + "#"):
            for m in re.finditer(re.escape(marker), text):
                bad.append(f"{path.name}:{text.count(chr(10), 0, m.start()) + 1}: {marker}")
    assert not bad, "Jinja markers in dig_stages source:\n" + "\n".join(bad)


def test_load_options_spec_and_flags(tmp_path):
    spec = tmp_path / "s.json"
    spec.write_text(json.dumps({"a": "x", "n": "3", "flag": "yes", "j": [[1, 2]]}))
    fields = {
        "a": ("str", None),
        "n": ("int", 0),
        "flag": ("bool", False),
        "j": ("json", None),
        "d": ("str", "dft"),
    }
    opts = _common.load_options(["--spec", str(spec), "--n", "5"], "t", fields)
    assert opts == {"a": "x", "n": 5, "flag": True, "j": [[1, 2]], "d": "dft"}
    opts = _common.load_options(["--j", '[["a","b"]]', "--a", "y"], "t", fields)
    assert opts["j"] == [["a", "b"]] and opts["a"] == "y"


@pytest.mark.parametrize(
    ("spec", "argv", "fragment"),
    [
        ({"n": "many"}, [], "option 'n' must be an integer, got 'many'"),
        ({"flag": "maybe"}, [], "option 'flag' must be true or false"),
        ({}, ["--j", "[oops"], "option 'j' is not valid JSON"),
        ({"a": ["x"]}, [], "option 'a' must be a string"),
        ({}, [], "t: missing required option(s) a"),
    ],
)
def test_load_options_errors(tmp_path, spec, argv, fragment):
    path = tmp_path / "s.json"
    path.write_text(json.dumps(spec))
    fields = {"a": ("str", None), "n": ("int", 0), "flag": ("bool", False), "j": ("json", None)}
    with pytest.raises(_common.StageError) as err:
        _common.load_options(["--spec", str(path), *argv], "t", fields, required=["a"])
    assert fragment in str(err.value)


def test_load_options_bad_spec_file(tmp_path):
    with pytest.raises(_common.StageError, match="not found"):
        _common.load_options(["--spec", str(tmp_path / "nope.json")], "t", {})
    (tmp_path / "bad.json").write_text("[1]")
    with pytest.raises(_common.StageError, match="must hold a JSON object"):
        _common.load_options(["--spec", str(tmp_path / "bad.json")], "t", {})


def test_run_main_prints_error_and_code(capsys):
    def body(_opts):
        _common.fail("first line\nsecond line", 7)

    assert _common.run_main(body, dict) == 7
    err = capsys.readouterr().err
    assert err == "ERROR: first line\n  second line\n"


def test_find_first_is_shallowest_then_sorted(tmp_path):
    (tmp_path / "b" / "deep").mkdir(parents=True)
    (tmp_path / "b" / "deep" / "scene.usd").write_text("1")
    (tmp_path / "a" / "x").mkdir(parents=True)
    (tmp_path / "a" / "x" / "scene.usd").write_text("2")
    (tmp_path / "z").mkdir()
    (tmp_path / "z" / "scene.usd").write_text("3")
    assert _common.find_first(tmp_path, "scene.usd", 5, "file") == tmp_path / "z" / "scene.usd"
    assert _common.find_first(tmp_path, "scene.usd", 1, "file") is None
    assert _common.find_first(tmp_path, "x", 5, "file") is None
    assert _common.find_first(tmp_path, "x", 5, "dir") == tmp_path / "a" / "x"
    hit = _common.find_first(tmp_path, "scene.usd", 5, where=lambda p: "deep" in str(p))
    assert hit == tmp_path / "b" / "deep" / "scene.usd"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("scene: __SCENE__\n", 'scene: "/a b/s.usd"\n'),
        ('scene: "__SCENE__"\n', 'scene: "/a b/s.usd"\n'),
        ("scene: '__SCENE__'\n", 'scene: "/a b/s.usd"\n'),
    ],
    ids=["bare", "double-quoted", "single-quoted"],
)
def test_fill_sentinels_json_quotes(text, expected):
    assert _common.fill_sentinels(text, {"__SCENE__": "/a b/s.usd"}, required=["__SCENE__"]) == expected


def test_fill_sentinels_errors():
    with pytest.raises(_common.StageError, match="no __OUTPUT__ placeholder"):
        _common.fill_sentinels("output: /x\n", {"__OUTPUT__": "/o"}, required=["__OUTPUT__"])
    with pytest.raises(_common.StageError, match="still holds placeholder"):
        _common.fill_sentinels("a: __SCENE__\nb: __OUTPUT__\n", {"__SCENE__": "/s"})


def test_run_tool_passes_code_and_tees(tmp_path):
    import sys

    log = tmp_path / "log.txt"
    code = _common.run_tool([sys.executable, "-c", "print('hello'); raise SystemExit(4)"], log_file=log)
    assert code == 4 and log.read_text() == "hello\n"
    with pytest.raises(_common.StageError, match="tool not found: /no/such/tool"):
        _common.run_tool(["/no/such/tool"])
    with pytest.raises(_common.StageError) as err:
        _common.require_tool([sys.executable, "-c", "raise SystemExit(2)"], what="thing")
    assert err.value.code == 2 and "thing failed (exit 2)" in str(err.value)


def test_copy_tree_follows_links_without_times(tmp_path):
    src = tmp_path / "src"
    (src / "a").mkdir(parents=True)
    (src / "a" / "f.txt").write_text("x")
    os.utime(src / "a" / "f.txt", (1, 1))
    (src / "link.txt").symlink_to(src / "a" / "f.txt")
    dst = tmp_path / "dst"
    dst.mkdir()
    assert _common.copy_tree(src, dst) == 2
    assert (dst / "link.txt").read_text() == "x" and not (dst / "link.txt").is_symlink()
    assert (dst / "a" / "f.txt").stat().st_mtime > 1


# ---------------------------------------------------------------------------------------------
# pod preflights and locating inputs


def test_nvoptix_check(tmp_path):
    f = tmp_path / "nvoptix.bin"
    with pytest.raises(_common.StageError, match=r"nvoptix.bin not mounted; Kit would fall back"):
        pod.check_nvoptix(f)
    f.write_bytes(b"x")
    pod.check_nvoptix(f)


class _FakeStat:
    def __init__(self, gib: float) -> None:
        self.f_frsize = 4096
        self.f_blocks = int(gib * 2**30 / 4096)


@pytest.mark.parametrize(("gib", "ok"), [(16, True), (32, True), (15.5, False), (0.0625, False)])
def test_shm_check(monkeypatch, gib, ok):
    monkeypatch.setattr(pod.os, "statvfs", lambda _p: _FakeStat(gib))
    if ok:
        pod.check_shm("/dev/shm")
        return
    with pytest.raises(_common.StageError) as err:
        pod.check_shm("/dev/shm", purpose="torchrun shared-memory")
    assert f"/dev/shm is {gib:.1f}GiB; need >= 16 GiB (32 preferred) for torchrun shared-memory." in str(
        err.value
    )


def test_find_scene_and_real_image(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "spark_lighting.usd").write_text("x")
    assert pod.find_scene(tmp_path, "spark_lighting.usd") == (tmp_path / "b" / "spark_lighting.usd").resolve()
    with pytest.raises(_common.StageError, match="scene_filename=nope.usd not found under"):
        pod.find_scene(tmp_path, "nope.usd")
    (tmp_path / "input_real_image").mkdir()
    direct = tmp_path / "input_real_image" / "0603_H100.jpg"
    direct.write_text("x")
    other = tmp_path / "b" / "115_2819_000.jpg"
    other.write_text("y")
    assert pod.find_real_image(tmp_path, "input_real_image/0603_H100.jpg") == direct.resolve()
    assert pod.find_real_image(tmp_path, "input_real_image/115_2819_000.jpg") == other.resolve()
    with pytest.raises(_common.StageError, match="real_image_filename=x.jpg not found under"):
        pod.find_real_image(tmp_path, "x.jpg")


def test_find_roi_tree_root(tmp_path):
    assert pod.find_crop_root(tmp_path) is None
    (tmp_path / "crop").mkdir()  # empty: falls through to the search, which finds itself
    (tmp_path / "w" / "x" / "crop" / "IC").mkdir(parents=True)
    assert pod.find_crop_root(tmp_path) == tmp_path / "crop"
    (tmp_path / "crop").rmdir()
    assert pod.find_crop_root(tmp_path) == tmp_path / "w" / "x" / "crop"
    (tmp_path / "crop" / "IC").mkdir(parents=True)
    assert pod.find_crop_root(tmp_path) == tmp_path / "crop"


def test_find_pretrained(tmp_path):
    with pytest.raises(_common.StageError, match="pretrained/ not found within depth 4"):
        pod.find_pretrained(tmp_path)
    (tmp_path / "a" / "pretrained").mkdir(parents=True)
    assert pod.find_pretrained(tmp_path) == tmp_path / "a" / "pretrained"


def test_resolve_submask_root_wrapper_rule(tmp_path):
    assert pod.resolve_submask_root(tmp_path) == tmp_path
    (tmp_path / "PCB" / "IC" / "mask" / "bridge").mkdir(parents=True)
    assert pod.resolve_submask_root(tmp_path) == tmp_path / "PCB"
    (tmp_path / "metal" / "mask" / "MT_Break").mkdir(parents=True)
    assert pod.resolve_submask_root(tmp_path) == tmp_path


def test_resolve_submask_root_only_first_subdir_counts(tmp_path):
    (tmp_path / "A_first").mkdir()
    (tmp_path / "B" / "IC" / "mask" / "bridge").mkdir(parents=True)
    assert pod.resolve_submask_root(tmp_path) == tmp_path


def test_link_pretrained_replaces_only_present_items(tmp_path):
    pre = tmp_path / "pretrained"
    (pre / "NVDINOV2").mkdir(parents=True)
    (pre / "C-RADIOv2_B.pth").write_text("w")
    ag = tmp_path / "ag"
    (ag / "checkpoints" / "NVDINOV2").mkdir(parents=True)
    (ag / "checkpoints" / "sam2").mkdir()
    linked = pod.link_pretrained(pre, ag)
    assert linked == ["NVDINOV2", "C-RADIOv2_B.pth"]
    assert (ag / "checkpoints" / "NVDINOV2").is_symlink()
    assert (ag / "checkpoints" / "sam2").is_dir() and not (ag / "checkpoints" / "sam2").is_symlink()
