"""The torch path of the registration: batch-size independence and accuracy on CUDA; numpy fallback elsewhere."""

from __future__ import annotations

import numpy as np
import pytest
from dig_stages import align, align_torch, align_torch_level
from dig_stages.align_image import _sample

SIZE = 160


def _board(seed: int, size: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    a = 0.32 + 0.03 * rng.standard_normal((size, size))
    for _ in range(50):
        y, x = rng.integers(0, size - 4, 2)
        h, w = rng.integers(3, 24, 2)
        a[y : y + h, x : x + w] = rng.choice([0.08, 0.15, 0.6, 0.75])
        a[y : y + h, max(0, x - 3) : x] = 0.95
    k = np.array([1, 4, 6, 4, 1], float) / 16
    a = np.apply_along_axis(lambda r: np.convolve(r, k, "same"), 0, a)
    a = np.apply_along_axis(lambda r: np.convolve(r, k, "same"), 1, a)
    return np.clip(a, 0, 1).astype(np.float32)


def _pair(seed: int, true: align.Transform, kind: str) -> tuple[np.ndarray, np.ndarray]:
    big, m = _board(seed, SIZE + 40), 20
    ref = big[m : m + SIZE, m : m + SIZE]
    inv = np.linalg.inv(np.vstack([true.matrix(), [0, 0, 1]]))[:2]
    inv[:, 2] += m
    ys, xs = np.mgrid[0:SIZE, 0:SIZE]
    px = inv[0, 0] * xs + inv[0, 1] * ys + inv[0, 2]
    py = inv[1, 0] * xs + inv[1, 1] * ys + inv[1, 2]
    mov = _sample(big, px.ravel(), py.ravel())[0].reshape(SIZE, SIZE)
    g = np.power(np.clip(mov, 0, 1), 0.6)
    mov = {"gamma": g, "folded": np.where(g < 0.7, g, 1.4 - g), "inverted": 1 - g}[kind]
    mov = mov + 0.01 * np.random.default_rng(seed + 1).standard_normal(mov.shape)
    return (ref * 255).astype(np.uint8), (np.clip(mov, 0, 1) * 255).astype(np.uint8)


C = ((SIZE - 1) / 2, (SIZE - 1) / 2)
TRUES = [
    align.Transform(0.4, 1.012, 0.991, 2.3, -1.6, C, C),
    align.Transform(-0.6, 0.987, 1.009, -1.2, 2.7, C, C),
]


def _corner_error(a: align.Transform, b: align.Transform) -> float:
    c = np.array([[0, 0], [SIZE - 1, 0], [0, SIZE - 1], [SIZE - 1, SIZE - 1]], float)
    return float(np.mean(np.linalg.norm(a.apply(c) - b.apply(c), axis=1)))


def _pairs() -> tuple[list[np.ndarray], list[np.ndarray], list[align.Transform]]:
    refs, movs, trues = [], [], []
    for i, kind in enumerate(("gamma", "folded", "inverted")):
        for j, t in enumerate(TRUES):
            r, m = _pair(10 * i + j, t, kind)
            refs.append(r)
            movs.append(m)
            trues.append(t)
    return refs, movs, trues


def test_batch_without_cuda_is_the_numpy_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(align_torch, "available", lambda: False)
    refs, movs, _ = _pairs()
    got = align_torch.align_batch(refs[:2], movs[:2], {"shift_range": 6})
    want = [align.align(r, m, {"shift_range": 6}) for r, m in zip(refs[:2], movs[:2], strict=True)]
    for g, w in zip(got, want, strict=True):
        assert np.array_equal(g.transform.matrix(), w.transform.matrix())
        assert np.array_equal(g.image, w.image)


@pytest.mark.skipif(not align_torch.available(), reason="needs torch with CUDA (run on the GPU machine)")
def test_gpu_batch_is_accurate_and_independent_of_the_batch_size() -> None:
    refs, movs, trues = _pairs()
    whole = align_torch.align_batch(refs, movs, {"shift_range": 6})
    pieces = align_torch.align_batch(refs, movs, {"shift_range": 6}, max_batch=4)
    alone = [
        align_torch.align_batch([r], [m], {"shift_range": 6})[0] for r, m in zip(refs, movs, strict=True)
    ]
    for w, p, a, t, ref in zip(whole, pieces, alone, trues, refs, strict=True):
        assert np.array_equal(w.transform.matrix(), p.transform.matrix())
        assert np.array_equal(w.transform.matrix(), a.transform.matrix())
        assert _corner_error(w.transform, t) < 0.3
        assert w.image.shape == ref.shape and w.image.dtype == np.uint8 and w.mi > 0.3


@pytest.mark.skipif(not align_torch.available(), reason="needs torch with CUDA (run on the GPU machine)")
def test_gpu_warp_matches_the_numpy_warp_and_gate_rejects_a_wrong_board() -> None:
    refs, movs, _ = _pairs()
    res = align_torch.align_gpu(refs[0], movs[0], {"shift_range": 6, "min_mi": 0.15})
    cpu = align.warp(movs[0], res.transform, refs[0].shape)
    assert np.abs(res.image.astype(int) - cpu.astype(int)).max() <= 1
    wrong = align_torch.align_gpu(
        refs[0], _pair(99, TRUES[0], "gamma")[1], {"shift_range": 6, "min_mi": 0.15}
    )
    assert res.passed and not wrong.passed


@pytest.mark.skipif(not align_torch.available(), reason="needs torch with CUDA (run on the GPU machine)")
def test_staged_copy_back_equals_the_direct_copy(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(align_torch, "STAGE_BYTES", 4096)  # many chunks, and a partial last one
    monkeypatch.setattr(align_torch, "_STAGING", [])
    for dtype in (torch.uint8, torch.float32):
        t = (torch.rand(3, 37, 41, 3, device="cuda") * 255).to(dtype)
        monkeypatch.setattr(align_torch, "HOST_COPY", "staged")
        staged = align_torch._to_host(t)
        monkeypatch.setattr(align_torch, "HOST_COPY", "direct")
        direct = align_torch._to_host(t)
        assert staged.dtype == direct.dtype == t.cpu().numpy().dtype
        assert np.array_equal(staged, t.cpu().numpy()) and np.array_equal(direct, staged)


@pytest.mark.skipif(not align_torch.available(), reason="needs torch with CUDA (run on the GPU machine)")
def test_gpu_mi_matches_the_numpy_mi_of_the_same_joint() -> None:
    import torch

    j = torch.randint(0, 50, (4, 16, 16), device="cuda", dtype=torch.long)
    j[1, 3:] = 0  # empty bins: 0 log 0 = 0
    got = align_torch_level._entropy_terms(j).cpu().numpy()
    want = [align.mutual_information(x.astype(np.float64))[0] for x in j.cpu().numpy()]
    assert np.allclose(got, want, atol=1e-9)
