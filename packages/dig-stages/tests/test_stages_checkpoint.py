"""Checkpoint wrapper layout and best-step selection (the three cases)."""

from __future__ import annotations

import pytest
from dig_stages import _common, checkpoint


def _trainer(root, steps, valid=None):
    job = root / "results" / "anomaly_gen" / "e" / "job"
    for sub in ("model", "optim", "scheduler", "trainer"):
        (job / "checkpoints" / sub).mkdir(parents=True)
        for s in steps:
            (job / "checkpoints" / sub / checkpoint.iter_name(s)).write_text(sub)
    (job / "ag_config.yaml").write_text("anomaly_types: []\n")
    (job / "tokenizer.json").write_text("{}")
    for step, score in (valid or {}).items():
        d = job / "valid" / str(step)
        d.mkdir(parents=True)
        d.joinpath("valid_kpi.csv").write_text(
            f"kpi,IC+bridge,Average\ncradio_v3_base_fid,1,1\nmnn_score,0.1,0.1\nnn_score,0.5,{score}\n"
        )
    return job


def test_wrapper_trainer_layout_only_model_weights(tmp_path):
    job = _trainer(tmp_path / "ckpt", [1000, 2000])
    wrapper = checkpoint.build_wrapper(tmp_path / "ckpt", tmp_path / "w")
    model = sorted((wrapper / "checkpoints" / "model").iterdir())
    assert [p.name for p in model] == ["iter_000001000.pt", "iter_000002000.pt"]
    assert all(p.is_symlink() and p.read_text() == "model" for p in model)
    assert (wrapper / "ag_config.yaml").read_text() == "anomaly_types: []\n"
    assert not (wrapper / "ag_config.yaml").is_symlink()
    assert (wrapper / "tokenizer.json").is_symlink()
    assert (wrapper / "checkpoints").resolve() != (job / "checkpoints").resolve()
    assert checkpoint.available_steps(wrapper) == [1000, 2000]


def test_wrapper_flat_layout_and_sidecars(tmp_path):
    ck = tmp_path / "models_pcb"
    ck.mkdir()
    (ck / "ag_config.yaml").write_text("x: 1\n")
    (ck / "iter_000014000.pt").write_text("w")
    (ck / "extra.ckpt").write_text("skip")
    (ck / "vocab.txt").write_text("v")
    w = checkpoint.build_wrapper(ck, tmp_path / "w")
    assert [p.name for p in (w / "checkpoints" / "model").iterdir()] == ["iter_000014000.pt"]
    assert sorted(p.name for p in w.iterdir()) == ["ag_config.yaml", "checkpoints", "vocab.txt"]
    checkpoint.require_step(w, 14000)
    with pytest.raises(_common.StageError) as err:
        checkpoint.require_step(w, 9000)
    assert "checkpoint_step=9000" in str(err.value) and "steps in this checkpoint: 14000" in str(err.value)


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (lambda d: None, "ag_config.yaml not found in checkpoint"),
        (lambda d: (d / "ag_config.yaml").write_text("x"), "no model iter_*.pt files found under"),
        (
            lambda d: (
                (d / "ag_config.yaml").write_text("x"),
                (d / "optim").mkdir(),
                (d / "optim" / "iter_000000010.pt").write_text("o"),
            ),
            "no model iter_*.pt files found",
        ),
    ],
)
def test_wrapper_errors(tmp_path, make, fragment):
    ck = tmp_path / "ck"
    ck.mkdir()
    make(ck)
    with pytest.raises(_common.StageError, match=fragment.replace("*", r"\*")):
        checkpoint.build_wrapper(ck, tmp_path / "w")


def test_pick_case1_best_validated_saved_step(tmp_path):
    # 1500 has the best score but no saved checkpoint (val 1500 / save 1000); 0 is the baseline
    _trainer(tmp_path, [1000, 2000], valid={0: 0.99, 1000: 0.4, 1500: 0.9, 2000: 0.7})
    assert checkpoint.pick_best_step(tmp_path, 14000) == 2000


def test_pick_case1_falls_through_when_nothing_saved(tmp_path, capsys):
    _trainer(tmp_path, [1000], valid={1500: 0.9})
    assert checkpoint.pick_best_step(tmp_path, 14000) == 1000
    assert "validation_iter % save_iter == 0" in capsys.readouterr().err


def test_pick_case2_latest_trained(tmp_path):
    _trainer(tmp_path, [500, 2000, 1000])
    assert checkpoint.pick_best_step(tmp_path, 7) == 2000


def test_pick_case3_shipped(tmp_path):
    (tmp_path / "ag_config.yaml").write_text("x")
    (tmp_path / "iter_000014000.pt").write_text("w")
    assert checkpoint.pick_best_step(tmp_path, 14000) == 14000


def test_cli_pick_best_step_prints_only_step(stages_run, tmp_path):
    _trainer(tmp_path / "ck", [1000, 2000], valid={1000: 0.8, 2000: 0.3})
    res = stages_run(
        "pick-best-step", {"ckpt_root": str(tmp_path / "ck"), "fallback_step": 5}, tmp_path / "s.json"
    )
    assert res.returncode == 0 and res.stdout == "1000\n"
    assert "best=1000" in res.stderr
