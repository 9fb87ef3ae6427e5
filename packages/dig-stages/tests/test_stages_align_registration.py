"""MI registration: known transforms under three intensity distortions, wrong-board rejection, warp, CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from dig_stages import align
from dig_stages.align_image import _sample
from PIL import Image

SIZE = 192


def _board(seed: int, size: int = SIZE + 48) -> np.ndarray:
    """Small board-like image in [0, 1]: mottled base, component bodies, bright pads, light blur."""
    rng = np.random.default_rng(seed)
    a = 0.32 + 0.03 * rng.standard_normal((size, size))
    for _ in range(60):
        y, x = rng.integers(0, size - 4, 2)
        h, w = rng.integers(3, 26, 2)
        a[y : y + h, x : x + w] = rng.choice([0.08, 0.15, 0.6, 0.75])
        a[y : y + h, max(0, x - 3) : x] = 0.95
    k = np.array([1, 4, 6, 4, 1], float) / 16  # separable binomial blur
    a = np.apply_along_axis(lambda r: np.convolve(r, k, "same"), 0, a)
    a = np.apply_along_axis(lambda r: np.convolve(r, k, "same"), 1, a)
    return np.clip(a, 0, 1).astype(np.float32)


def _distort(v: np.ndarray, kind: str) -> np.ndarray:
    g = np.power(np.clip(v, 0, 1), 0.6)
    return {"gamma": g, "folded": np.where(g < 0.7, g, 1.4 - g), "inverted": 1 - g}[kind]


def _case(seed: int, true: align.Transform, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Reference = centre crop of a board; moving(q) = distort(board(T^-1 q)) with its own noise."""
    big = _board(seed)
    m = 24
    ref = big[m : m + SIZE, m : m + SIZE]
    inv = np.linalg.inv(np.vstack([true.matrix(), [0, 0, 1]]))[:2]
    inv[:, 2] += m  # moving pixels sample the big board, whose origin is m px before the reference's
    ys, xs = np.mgrid[0:SIZE, 0:SIZE]
    px = inv[0, 0] * xs + inv[0, 1] * ys + inv[0, 2]
    py = inv[1, 0] * xs + inv[1, 1] * ys + inv[1, 2]
    mov = _sample(big, px.ravel(), py.ravel())[0].reshape(SIZE, SIZE)
    rng = np.random.default_rng(seed + 1)
    mov = _distort(mov, kind) + 0.01 * rng.standard_normal(mov.shape)
    return ref, np.clip(mov, 0, 1).astype(np.float32)


def _corner_error(a: align.Transform, b: align.Transform, size: int = SIZE) -> float:
    c = np.array([[0, 0], [size - 1, 0], [0, size - 1], [size - 1, size - 1]], float)
    return float(np.mean(np.linalg.norm(a.apply(c) - b.apply(c), axis=1)))


CENTRE = ((SIZE - 1) / 2, (SIZE - 1) / 2)
TRUE = align.Transform(0.537, 1.0137, 0.9921, 3.3, -2.1, CENTRE, CENTRE)


@pytest.mark.parametrize("kind", ["gamma", "folded", "inverted"])
def test_recovers_an_off_grid_transform_under_intensity_distortions(kind: str) -> None:
    ref, mov = _case(1, TRUE, kind)
    est, mi, nmi, levels, evals = align.register(ref, mov, {"shift_range": 8})
    assert _corner_error(est, TRUE) < 0.2, (est, kind)
    assert (
        mi > 0.3
        and nmi > 1.0
        and levels == align.derive(align.AlignParams(), ref.shape, mov.shape)["pyr_levels"]
    )
    assert levels >= 2 and 10 < evals < 120  # grids at the top level, a few Newton steps per level


def test_a_different_board_is_rejected_by_the_min_mi_gate(tmp_path: Path) -> None:
    ref, mov = _case(1, TRUE, "gamma")
    _, wrong = _case(2, TRUE, "gamma")
    good = align.align(ref, mov, {"min_mi": 0.15, "shift_range": 8})
    bad = align.align(ref, wrong, {"min_mi": 0.15, "shift_range": 8})
    assert good.passed and good.mi > 0.3
    assert not bad.passed and bad.mi < 0.1
    # CLI: exit code 2 (registration's "MI below min_mi"), nothing pretends to have passed
    for name, arr in (("ref", ref), ("wrong", wrong)):
        Image.fromarray((arr * 255).astype(np.uint8)).save(tmp_path / f"{name}.png")
    rc = align.main(
        [
            "--reference",
            str(tmp_path / "ref.png"),
            "--moving",
            str(tmp_path / "wrong.png"),
            "--output",
            str(tmp_path / "out.png"),
            "--min-mi",
            "0.15",
        ]
    )
    assert rc == 2
    assert json.loads((tmp_path / "out.png.json").read_text())["passed"] is False


def test_scale_ratio_is_recovered_without_resizing() -> None:
    # no_resize: a 1.25x larger "edit" is registered as scale, the output keeps the reference size
    ref = (_board(3)[:128, :128] * 255).astype(np.uint8)
    mov = np.asarray(Image.fromarray(ref).resize((160, 160), Image.BICUBIC))
    res = align.align(ref, mov)
    t = res.transform
    assert abs(t.sx - 1.25) < 0.004 and abs(t.sy - 1.25) < 0.004 and abs(t.tx) < 0.3 and abs(t.ty) < 0.3
    assert res.image.shape == ref.shape and res.image.dtype == np.uint8
    assert np.abs(res.image[8:-8, 8:-8].astype(float) - ref[8:-8, 8:-8]).mean() < 6


def test_warp_nearest_keeps_labels_and_bilinear_keeps_dtype_and_channels() -> None:
    labels = np.zeros((40, 50), np.uint8)
    labels[10:30, 5:20], labels[5:15, 30:45] = 3, 7
    t = align.Transform(0.8, 1.01, 0.99, 1.4, -0.6, (24.5, 19.5), (24.5, 19.5))
    out = align.warp(labels, t, labels.shape, "nearest")
    assert set(np.unique(out)) == {0, 3, 7}
    rgb = np.dstack([labels * 30, labels, labels]).astype(np.uint8)
    assert align.warp(rgb, t, (20, 25)).shape == (20, 25, 3)
    ident = align.Transform(0, 1, 1, 0, 0, (24.5, 19.5), (24.5, 19.5))
    assert np.array_equal(align.warp(rgb, ident, labels.shape), rgb)


def test_params_from_cookbook_block_and_derived_ranges() -> None:
    p = align.AlignParams.from_dict(
        {
            "rot_range_deg": [-1.0, 1.0, 0.1],
            "shift_step": 2,
            "bins": 64,
            "interp": "nearest",
            "no_resize": True,
            "gpu": "auto",
        }
    )
    assert p.rot_range_deg == (-1.0, 1.0, 0.1) and p.interp == "nearest" and p.ignored == {"gpu": "auto"}
    d = align.derive(p, (540, 720), (1080, 1440))
    # pyramid down to a top level of at least COARSE_MIN_DIM px: 540 -> 270 -> 135 -> 67
    assert d["sx_range"][0] < 2.0 < d["sx_range"][1] and d["pyr_levels"] == 4 and d["shift_range"] == 15
    d = align.derive(
        align.AlignParams(sx_range=(1.1, 1.3, 0.05), shift_range=100, pyr_levels=3), (540, 720), (540, 720)
    )
    assert d["sx_range"] == (1.1, 1.3, 0.05) and d["shift_range"] == 100 and d["pyr_levels"] == 3
    with pytest.raises(ValueError, match="interp"):
        align.AlignParams.from_dict({"interp": "cubic"})
    with pytest.raises(ValueError, match="min, max, step"):
        align.AlignParams.from_dict({"rot_range_deg": [1, 2]})


def test_mutual_information_of_known_histograms() -> None:
    assert align.mutual_information(np.eye(4))[0] == pytest.approx(math.log(4))
    assert align.mutual_information(np.ones((4, 4)))[0] == pytest.approx(0.0, abs=1e-12)


def test_cli_writes_image_metadata_and_warped_masks(tmp_path: Path) -> None:
    ref = (_board(5)[:96, :96] * 255).astype(np.uint8)
    mov = np.roll(ref, (1, 2), axis=(0, 1))
    Image.fromarray(ref).save(tmp_path / "ref.png")
    Image.fromarray(mov).save(tmp_path / "mov.png")
    Image.fromarray((mov > 128).astype(np.uint8) * 255).save(tmp_path / "mask.png")
    spec = {
        "reference": str(tmp_path / "ref.png"),
        "moving": str(tmp_path / "mov.png"),
        "output": str(tmp_path / "o/aligned.png"),
        "align_params": {"shift_range": 6},
    }
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    assert align.main(["--spec", str(tmp_path / "spec.json"), "--apply-to", str(tmp_path / "mask.png")]) == 0
    meta = json.loads((tmp_path / "o/aligned.png.json").read_text())
    assert abs(meta["transform"]["tx"] - 2) < 0.2 and abs(meta["transform"]["ty"] - 1) < 0.2
    assert set(np.unique(np.asarray(Image.open(tmp_path / "o/mask_aligned.png")))) <= {0, 255}


def test_sources_have_no_jinja_delimiters() -> None:
    # injected files pass through OSMO's Jinja: these sequences must not appear anywhere in them
    pkg = Path(align.__file__).parent
    own = [*pkg.glob("align*.py"), *pkg.glob("edit_*.py"), pkg / "batch.py"]
    for path in own:
        text = path.read_text()
        for bad in ("{" + "{", "{" + "%", "{" + "#"):
            assert bad not in text, f"{path.name} contains {bad!r}"


def test_gpu_path_falls_back_to_numpy_without_cuda() -> None:
    from dig_stages import align_torch

    ref = (_board(6)[:96, :96] * 255).astype(np.uint8)
    mov = np.roll(ref, (2, -1), axis=(0, 1))
    res = align_torch.align_gpu(ref, mov, {"shift_range": 6})
    assert abs(res.transform.tx + 1) < 0.2 and abs(res.transform.ty - 2) < 0.2
    assert res.image.shape == ref.shape


def test_result_does_not_depend_on_the_thread_count() -> None:
    # BLAS/OpenMP thread counts must not change a single bit of the transform (the pod pins 1 CPU, CI does not)
    import os
    import subprocess
    import sys

    code = (
        "import numpy as np; from dig_stages import align\n"
        "rng = np.random.default_rng(3); a = rng.random((120, 120)).astype(np.float32)\n"
        "k = np.ones(5) / 5; a = np.apply_along_axis(lambda r: np.convolve(r, k, 'same'), 0, a)\n"
        "b = np.roll(a, (2, -1), axis=(0, 1)) ** 0.7\n"
        "print(repr(align.register(a, b, {'shift_range': 6})[0].matrix().tolist()))\n"
    )
    outs = set()
    for n in ("1", "2"):
        env = os.environ | {"OMP_NUM_THREADS": n, "OPENBLAS_NUM_THREADS": n, "MKL_NUM_THREADS": n}
        res = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        outs.add(res.stdout)
    assert len(outs) == 1, outs
