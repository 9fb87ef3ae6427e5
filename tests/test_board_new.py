"""`dig board new`: boards generated from synthetic USD stages compile every PCBA flow and say what they found."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pxr")

from dig_stages.synthetic_board import make_board, make_layout, make_malformed  # noqa: E402
from dig_stages.usd_scan import mesh_classes  # noqa: E402
from PIL import Image  # noqa: E402
from pxr import Usd  # noqa: E402

from compiler.board_new import PCBA_FLOWS, main  # noqa: E402
from compiler.compose import Composer, parse_overrides  # noqa: E402
from compiler.options import load_option  # noqa: E402
from compiler.paths import REPO_ROOT  # noqa: E402
from compiler.pipeline import compile_request  # noqa: E402

# (layout, --component choice or None for every type)
CASES = [
    ("deep_generic", None),
    ("flat_materials", None),
    ("flat_materials", ["U_QFN16"]),
    ("named_parts", ["CAP_1206"]),
]


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("photo") / "aoi.jpg"
    Image.new("RGB", (64, 48), (90, 90, 90)).save(p)
    return p


def _tiles(png: Path) -> tuple[int, int]:
    """Cells in the preview: runs of all-white separator columns / rows, minus one."""
    a = np.asarray(Image.open(png).convert("RGB"))
    white = np.all(a == 255, axis=2)

    def runs(mask: np.ndarray) -> int:
        return int(mask[0]) + int(np.count_nonzero(mask[1:] & ~mask[:-1]))

    return runs(white.all(axis=0)) - 1, runs(white.all(axis=1)) - 1


def _new(tmp: Path, name: str, usd: str, *extra: str) -> tuple[int, Path]:
    conf = tmp / "conf"
    conf.mkdir(exist_ok=True)
    rc = main(["new", name, "--usd", usd, "--config-dir", str(conf), *extra])
    return rc, conf


def _compose(conf: Path, name: str) -> dict:
    return load_option("board", name, [conf])


@pytest.mark.parametrize(("layout", "components"), CASES, ids=lambda v: v if isinstance(v, str) else str(v))
def test_generated_board_compiles_every_flow(layout, components, tmp_path, photo, capsys):
    built = make_layout(tmp_path / f"{layout}.usda", layout)
    extra = [a for c in components or [] for a in ("--component", c)]
    rc, conf = _new(tmp_path, "gen_board", built["path"], *extra, "--real-image", str(photo))
    out = capsys.readouterr().out
    assert rc == 0, out
    board = _compose(conf, "gen_board")
    chosen = components or list(built["classes"])
    composer = Composer(searchpath=[conf])
    for flow in PCBA_FLOWS:
        c = compile_request(
            parse_overrides([f"flow={flow}", "usecase=pcb", "board=gen_board", "strict=true"]),
            composer=composer,
            prefs={},
        )
        if flow != "day1_manual_roi":
            assert c.config["board"]["key"] == "gen_board"
        if flow == "structural":
            ic_only = set().union(*({v for v in built["classes"][t].values()} for t in chosen)) - {
                "pad",
                "solder",
            } == {"ic"}
            assert c.config["knobs"]["render_patches"] == (-1 if ic_only else 5)
    # the classes found are the ones the stage was built with
    stage = Usd.Stage.Open(built["path"])
    labelled = mesh_classes(stage, board["cookbooks"]["day0_image"]["semantics"])
    root = built["layout"]["pcba_root"]
    for t in chosen:
        for inst in built["instances"][t]:
            found = {p[len(inst) + 1 :]: c for p, c in labelled.items() if p.startswith(inst + "/")}
            assert found == built["classes"][t], (t, inst)
    for t in set(built["classes"]) - set(chosen):  # unchosen types stay unlabelled
        assert not any(p.startswith(f"{root}/{t}/") for p in labelled)
    assert sorted(board["cookbooks"]["defect_image"]["component_types"]) == sorted(chosen)
    # the preview shows every scan-grid cell
    png = conf / "board" / "gen_board.preview.png"
    grid = board["cookbooks"]["day0_image"]["scan_grid"]
    assert _tiles(png) == (grid["x_num"], grid["y_num"])
    assert f"{grid['x_num']} x {grid['y_num']} cells" in out


def test_flat_materials_ic_only_takes_the_ic_profile(tmp_path, capsys):
    built = make_layout(tmp_path / "s.usda", "flat_materials")
    rc, conf = _new(tmp_path, "qfn", built["path"], "--component", "U_QFN16")
    assert rc == 0, capsys.readouterr()
    text = (conf / "board" / "qfn.yaml").read_text()
    assert "  - _ic_only\n" in text
    board = _compose(conf, "qfn")
    assert board["board"]["day1_anomaly_types"] == [["IC", "bridge"]]
    assert board["cookbooks"]["day0_crop"]["crop"]["class_dirs"] == {"ic": "IC"}
    assert board["cookbooks"]["pcba_target"]["horizontal_aperture"] == 150.0  # the stage camera's FOV
    assert board["cookbooks"]["pcba_target"]["camera_xform_path"] == "/Camera"


def _shipped_vs_generated(tmp_path, shipped_name, component, capsys):
    built = make_board(tmp_path / "spark.usda", counts={"0603": 6, "ic": 2, "r0402": 2})
    rc, conf = _new(tmp_path, "regen", built["path"], "--component", component)
    assert rc == 0, capsys.readouterr()
    mine, shipped = _compose(conf, "regen"), load_option("board", shipped_name)
    stage = Usd.Stage.Open(built["path"])
    for book in ("pcba_target",):
        for key in ("camera_path", "camera_xform_path", "ring_light_root", "pcba_root"):
            assert mine["cookbooks"][book][key] == shipped["cookbooks"][book][key], key
    for key in ("day1_anomaly_types", "structural_render_patches"):
        assert mine["board"][key] == shipped["board"][key], key
    assert mine["cookbooks"]["defect_image"] == {
        **shipped["cookbooks"]["defect_image"],
        "scan_grid": mine["cookbooks"]["defect_image"]["scan_grid"],
    }
    for book in ("day0_crop", "usd2roi_nvpcb"):
        assert mine["cookbooks"][book]["crop"] == shipped["cookbooks"][book]["crop"]
    # the same meshes get the same classes on the scene
    sem = lambda b, book: mesh_classes(stage, b["cookbooks"][book]["semantics"])  # noqa: E731
    assert sem(mine, "day0_image") == sem(shipped, "day0_image")

    def per_surface(rules):  # Day 1 labels one instance: compare what each surface of it is
        return sorted(
            (
                r["match"].split("/LibRef/")[-1] if "/LibRef/" in r["match"] else r["match"],
                r["labels"]["class"],
            )
            for r in rules
        )

    assert per_surface(mine["cookbooks"]["usd2roi_nvpcb"]["semantics"]) == per_surface(
        shipped["cookbooks"]["usd2roi_nvpcb"]["semantics"]
    )
    return mine


def test_regenerates_0603_H100(tmp_path, capsys):
    _shipped_vs_generated(tmp_path, "0603_H100", "_0603_H100", capsys)


def test_regenerates_1152819000(tmp_path, capsys):
    mine = _shipped_vs_generated(tmp_path, "1152819000", "_115_2819_000_1", capsys)
    assert mine["cookbooks"]["day0_crop"]["crop"]["max_emit"] is None  # the IC-only profile


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("not_usd", "not a USD file"),
        ("no_camera", "has no camera"),
        ("no_instances", "no prim holds component instances"),
    ],
)
def test_malformed_stage_is_refused(kind, message, tmp_path, capsys):
    path = make_malformed(tmp_path / f"{kind}.usda", kind)
    rc, conf = _new(tmp_path, "bad", path)
    err = capsys.readouterr().err
    assert rc == 1 and message in err and "Traceback" not in err
    assert not (conf / "board" / "bad.yaml").exists()


@pytest.mark.parametrize(
    ("args", "rc", "message"),
    [
        (
            ["--component", "_0603_H10"],
            1,
            "--component _0603_H10: not a component type of the stage (did you mean _0603_H100?)",
        ),
        (["--component", "_0603_H100", "--surface-class", "*=solder"], 1, "leaves no crop class"),
        (["--component", "_0603_H100", "--material", "ic=IC"], 1, "crop class 'ic' has no surfaces"),
        (["--component", "_0603_H100", "--surface-class", "surface_2"], 2, "PATTERN=CLASS"),
        (["--component", "_0603_H100", "--real-image", "/no/such.jpg"], 2, "no such file"),
    ],
)
def test_bad_options(args, rc, message, tmp_path, capsys):
    built = make_board(tmp_path / "spark.usda", counts={"0603": 3})
    got, conf = _new(tmp_path, "opt", built["path"], *args)
    err = capsys.readouterr().err
    assert got == rc and message in err, err
    assert not (conf / "board" / "opt.yaml").exists()


def test_dry_run_force_and_bad_name(tmp_path, capsys):
    built = make_board(tmp_path / "spark.usda", counts={"0603": 3})
    rc, conf = _new(tmp_path, "mine", built["path"], "--dry-run")
    out = capsys.readouterr().out
    assert rc == 0 and "defaults:\n  - _pcba\n  - _self_\n" in out and not (conf / "board").exists()
    assert _new(tmp_path, "mine", built["path"])[0] == 0
    target = conf / "board" / "mine.yaml"
    target.write_text("# mine, edited\n")
    capsys.readouterr()
    assert _new(tmp_path, "mine", built["path"])[0] == 1
    assert "exists: pass --force" in capsys.readouterr().err and target.read_text() == "# mine, edited\n"
    assert _new(tmp_path, "mine", built["path"], "--force")[0] == 0 and "_pcba" in target.read_text()
    assert _new(tmp_path, "_base", built["path"])[0] == 2
    assert _new(tmp_path, "0603_H100", built["path"])[0] == 2  # conf/ would shadow it in the user dir
    assert "is a board of conf/board/" in capsys.readouterr().err


def test_cli_through_dig(tmp_path):
    path = make_malformed(tmp_path / "x.usda", "no_camera")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), str(REPO_ROOT / "packages" / "dig-stages")]),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "compiler", "board", "new", "b", "--usd", path, "--dry-run"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert proc.returncode == 1 and "has no camera" in proc.stderr and "Traceback" not in proc.stderr
    proc = subprocess.run(
        [sys.executable, "-m", "compiler.board_new", "new"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert proc.returncode == 2 and "usage: dig board new" in proc.stderr
