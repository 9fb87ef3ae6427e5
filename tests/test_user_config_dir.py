"""A user's own config dir (Hydra search path): a board that lives only there compiles every PCBA flow."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from compiler.compose import Composer, parse_overrides
from compiler.errors import DigError
from compiler.matrix import shipped_matrix
from compiler.paths import CONF_DIR, REPO_ROOT
from compiler.pipeline import compile_request

# PCBA flows, read off the shipped matrix: those compiled per board (for the default board) and
# day1_manual_roi, which reads no board cookbook but takes the board choice.
BOARD_ENTRIES = [
    e
    for e in shipped_matrix()
    if "board=0603_H100" in e.overrides
    or ("usecase=pcb" in e.overrides and "flow=day1_manual_roi" in e.overrides)
]


def _user_board(root: Path) -> Path:
    """conf-shaped dir holding board/my_board.yaml: the 0603 board under another name, own structural default."""
    text = (CONF_DIR / "board" / "0603_H100.yaml").read_text(encoding="utf-8")
    text = text.replace("  key: 0603_H100\n", "  key: my_board\n").replace(
        "  structural_render_patches: 5\n", "  structural_render_patches: 3\n"
    )
    (root / "board").mkdir(parents=True)
    (root / "board" / "my_board.yaml").write_text(text, encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def user_dir(tmp_path_factory) -> Path:
    return _user_board(tmp_path_factory.mktemp("user-conf"))


def test_board_flows_found():
    assert {e.overrides[0] for e in BOARD_ENTRIES} >= {
        "flow=day0",
        "flow=good_image",
        "flow=structural",
        "flow=day1",
        "flow=day1_manual_roi",
    }


@pytest.mark.parametrize("entry", BOARD_ENTRIES, ids=lambda e: e.key)
def test_user_board_compiles_every_flow(entry, user_dir, compile_args):
    composer = Composer(searchpath=[user_dir])
    ov = [o for o in entry.overrides if o != "board=0603_H100"] + ["board=my_board"]
    mine = compile_request(parse_overrides([*ov, "strict=true"]), composer=composer, prefs={})
    shipped = compile_args(*entry.overrides)
    assert mine.key == entry.key.replace("0603_H100", "my_board")
    if "board=0603_H100" in entry.overrides:
        assert mine.config["board"]["key"] == "my_board"
    assert mine.config["cookbooks"] == shipped.config["cookbooks"]
    if entry.overrides[0] == "flow=structural":
        assert mine.config["knobs"]["render_patches"] == 3  # the user board's own default
    else:
        assert mine.config["knobs"] == shipped.config["knobs"]


def test_user_board_unknown_without_search_path(composer):
    with pytest.raises(DigError, match="has no option 'my_board'"):
        compile_request(parse_overrides(["flow=day0", "board=my_board"]), composer=composer, prefs={})


def test_base_is_not_a_board(composer):
    with pytest.raises(DigError, match="has no option '_pcba'"):
        compile_request(parse_overrides(["flow=day0", "board=_pcba"]), composer=composer, prefs={})


def test_cli_honours_dig_config_dir(user_dir, tmp_path):
    env = {
        **os.environ,
        "DIG_CONFIG_DIR": str(user_dir),
        "DIG_PREFERENCES": os.devnull,
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), str(REPO_ROOT / "packages" / "dig-stages")]),
    }
    out = tmp_path / "wf.yaml"
    proc = subprocess.run(
        [sys.executable, "-m", "compiler", "flow=day0", "board=my_board", f"out={out}"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert out.is_file()
    env["DIG_CONFIG_DIR"] = str(tmp_path / "missing")
    proc = subprocess.run(
        [sys.executable, "-m", "compiler", "flow=day0", "board=my_board"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0 and "DIG_CONFIG_DIR" in proc.stderr and "Traceback" not in proc.stderr
