"""Augmentation batch expansion: per-cell and per-mode trees, sorted, deterministic, errors on no inputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from dig_stages import batch


def _touch(p: Path) -> None:
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(b"x")


def test_cells_layout_maps_each_roi_to_its_material_cell(tmp_path: Path) -> None:
    src = tmp_path / "in"
    for rel in [
        "crop/PAD/c1/normal_img/0002.png",
        "crop/PAD/c1/normal_img/0001.jpg",
        "crop/IC/c0/normal_img/0000.png",
        "crop/IC/c0/cad_mask/0000.png",
        "crop/IC/c0/normal_img/notes.txt",
    ]:
        _touch(src / rel)
    entries = batch.expand(src, tmp_path / "out", "cells", ".jpg", side_dir=tmp_path / "side")
    assert [e.key for e in entries] == ["IC/c0/0000", "PAD/c1/0001", "PAD/c1/0002"]
    assert entries[0].input == str(src / "crop/IC/c0/normal_img/0000.png")
    assert entries[0].output == str(tmp_path / "out/crop/IC/c0/0000.jpg")
    assert entries[0].caption == str(tmp_path / "side/cap_IC_c0_0000.txt")
    assert entries[0].metadata == str(tmp_path / "side/meta_IC_c0_0000.json")
    # deterministic: a second expansion is identical
    assert entries == batch.expand(src, tmp_path / "out", "cells", ".jpg", side_dir=tmp_path / "side")


def test_modes_layout_maps_to_mode_rgb(tmp_path: Path) -> None:
    src = tmp_path / "in"
    for rel in ["cropped/tilt/rgb/0001.png", "cropped/missing/rgb/0000.jpg", "cropped/tilt/mask/0001.png"]:
        _touch(src / rel)
    entries = batch.expand(src, tmp_path / "out", "modes", "jpg")
    assert [(e.key, Path(e.output).relative_to(tmp_path / "out").as_posix()) for e in entries] == [
        ("missing/0000", "missing/rgb/0000.jpg"),
        ("tilt/0001", "tilt/rgb/0001.jpg"),
    ]
    assert entries[1].caption == "/tmp/cap_tilt__0001.txt"


@pytest.mark.parametrize(
    ("layout", "rel", "message"),
    [
        ("cells", None, "no material subdirs under"),
        ("cells", "crop/IC/c0/cad_mask/0.png", "no crop images at"),
        ("modes", "cropped/tilt/mask/0.png", "no per-mode rgb crops under"),
        ("grid", None, "layout 'grid' is unknown"),
    ],
)
def test_no_inputs_is_an_error(tmp_path: Path, layout: str, rel: str | None, message: str) -> None:
    if rel:
        _touch(tmp_path / rel)
    with pytest.raises(batch.BatchError, match=message):
        batch.expand(tmp_path, tmp_path / "out", layout)


def test_two_images_with_one_stem_are_refused(tmp_path: Path) -> None:
    _touch(tmp_path / "crop/IC/c0/normal_img/0001.png")
    _touch(tmp_path / "crop/IC/c0/normal_img/0001.jpg")
    with pytest.raises(batch.BatchError, match="both map to"):
        batch.expand(tmp_path, tmp_path / "out", "cells")


def test_cli_writes_entries_and_fails_cleanly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _touch(tmp_path / "cropped/tilt/rgb/0001.png")
    spec = tmp_path / "spec.json"
    spec.write_text(
        json.dumps({"input_dir": str(tmp_path), "output_dir": str(tmp_path / "o"), "layout": "modes"})
    )
    out = tmp_path / "entries.json"
    assert batch.main(["--spec", str(spec), "--out", str(out)]) == 0
    assert [e["key"] for e in json.loads(out.read_text())] == ["tilt/0001"]
    assert batch.main(["--spec", str(spec), "--layout", "cells"]) == 1
    assert "ERROR: no material subdirs" in capsys.readouterr().err
