"""Sweeps: Hydra's sweep syntax expanded in-process, one deterministic file per variant, an index."""

from __future__ import annotations

import json

from compiler.sweep import SweepRun, expand, run_sweep


def test_expand_matches_hydra_cartesian_order():
    variants = expand(["flow=day0", "knobs.crop_max_emit=1,5", "knobs.num_sdg=range(10,30,10)"])
    assert variants == [
        ["flow=day0", "knobs.crop_max_emit=1", "knobs.num_sdg=10"],
        ["flow=day0", "knobs.crop_max_emit=1", "knobs.num_sdg=20"],
        ["flow=day0", "knobs.crop_max_emit=5", "knobs.num_sdg=10"],
        ["flow=day0", "knobs.crop_max_emit=5", "knobs.num_sdg=20"],
    ]
    assert len(expand(["flow=day0,good_image", "knobs.render_patches=choice(1,2,3)"])) == 6


def test_sweep_writes_index_and_deterministic_files(tmp_path, composer):
    args = ["flow=day0", "knobs.crop_max_emit=1,5", "knobs.num_sdg=15,30", "knobs.render_patches=0,3"]
    target, results = run_sweep(
        args, SweepRun(out_dir=tmp_path / "a", prefs={}, progress=False, composer=composer)
    )
    index = json.loads((target / "sweep.json").read_text())
    assert index["variants"] == 8 and index["failed"] == 4
    failed = [r for r in index["results"] if r["error"]]
    assert all("knobs.render_patches=0" in r["overrides"] for r in failed)
    assert all(r["error"].startswith("ERROR: knobs.render_patches") for r in failed)
    ok = [r for r in index["results"] if not r["error"]]
    assert len({r["sha256"] for r in ok}) == 4
    for r in ok:
        assert (target / r["file"]).is_file()
    target2, _ = run_sweep(
        args, SweepRun(out_dir=tmp_path / "b", prefs={}, progress=False, composer=composer)
    )
    for r in ok:
        assert (target / r["file"]).read_bytes() == (target2 / r["file"]).read_bytes()


def test_sweep_variant_equals_single_compile(tmp_path, composer, compile_args):
    target, results = run_sweep(
        ["flow=structural", "knobs.defect_modes=shift,all"],
        SweepRun(out_dir=tmp_path, prefs={}, progress=False, composer=composer),
    )
    assert [r.overrides for r in results] == [
        ["flow=structural", "knobs.defect_modes=shift"],
        ["flow=structural", "knobs.defect_modes=all"],
    ]
    single = compile_args("flow=structural", "knobs.defect_modes=shift").text
    assert (target / results[0].file).read_text() == single


def test_parallel_sweep_gives_the_same_bytes(tmp_path):
    args = ["flow=good_image", "knobs.crop_max_emit=range(1,13)", "knobs.render_patches=1,2"]
    _, serial = run_sweep(args, SweepRun(out_dir=tmp_path / "s", prefs={}, progress=False, jobs=1))
    _, par = run_sweep(args, SweepRun(out_dir=tmp_path / "p", prefs={}, progress=False, jobs=2))
    assert [(r.file, r.sha256) for r in serial] == [(r.file, r.sha256) for r in par]
