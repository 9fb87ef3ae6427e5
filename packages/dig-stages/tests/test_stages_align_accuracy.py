"""CPU registration on the bench's cases (bench/board_images.py): accuracy per distortion at 256 and 512 px,
the analytic MI gradient against finite differences, the Pillow warp and the gate's fast path against numpy."""

from __future__ import annotations

import importlib.util
import math
import statistics
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from dig_stages import align, align_newton
from dig_stages.align_image import _blur3, _normalise
from dig_stages.align_level import LevelSampling, _Level


def _board_images() -> ModuleType:
    path = Path(__file__).resolve().parents[3] / "bench" / "board_images.py"
    spec = importlib.util.spec_from_file_location("board_images", path)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("board_images", mod)
    spec.loader.exec_module(mod)
    return mod


BI = _board_images()
# median corner error bounds (px) over the cases below; folded (non-monotonic) carries the least
# geometric information of the three (bright pads fold onto the substrate's grey)
BOUND = {"gamma": 0.05, "folded": 0.1, "inverted": 0.05}


@pytest.mark.parametrize("size", [256, 512])
def test_accuracy_on_the_bench_distortions(size: int) -> None:
    for dist in BI.DISTORTIONS:
        errs = []
        for case in range(3):
            c = BI.make_case(size, seed=case, case=case, distortion=dist)
            res = align.align(c.reference, c.moving, {})
            errs.append(BI.corner_error(c.matrix, res.transform.matrix(), size))
            assert res.image.shape == c.reference.shape and res.evaluations < 120
        assert max(errs) < 0.25, (size, dist, errs)
        assert statistics.median(errs) <= BOUND[dist], (size, dist, errs)


def _level(size: int = 256) -> tuple[_Level, align.Box, np.ndarray, np.ndarray]:
    c = BI.make_case(size, seed=0, case=0, distortion="folded")
    p = align.AlignParams()
    fixed, mov = _normalise(c.reference), _normalise(c.moving)
    box = align.make_box(p, align.derive(p, fixed.shape, mov.shape), fixed.shape, mov.shape)
    lvl = _Level(_blur3(fixed), _blur3(mov), 1.0, LevelSampling(64, 8192, margin=box.margin()))
    align_newton._set_offsets(lvl, box)
    x = np.array([math.radians(c.params[0]), *c.params[1:]])
    half_diag = 0.5 * math.hypot(size, size)
    units = np.array([1 / half_diag, 2 / size, 2 / size, 1.0, 1.0])  # ~1 px of corner motion each
    return lvl, box, x + units * np.array([0.4, -0.5, 0.3, 0.7, -0.6]), units


def test_mi_gradient_matches_finite_differences_of_the_objective() -> None:
    lvl, box, x, units = _level()
    mi, grad, curv = align_newton.mi_newton(lvl, box, x)
    assert mi == pytest.approx(float(lvl.mi_batch(box.matrices(x))[0]), rel=1e-5)

    def f(v: np.ndarray) -> float:
        return float(lvl.mi_batch(box.matrices(v))[0])

    h = 0.02
    fd = [(f(x + h * units * e) - f(x - h * units * e)) / (2 * h * units[i]) for i, e in enumerate(np.eye(5))]
    np.testing.assert_allclose(grad * units, np.array(fd) * units, rtol=0.1, atol=2e-4)
    assert curv is not None and np.all(np.linalg.eigvalsh(curv) > 0)  # models minus the Hessian


def _numpy_bilinear(src: np.ndarray, m: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    h, w = shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    sh, sw = src.shape[:2]
    qx = np.clip(m[0, 0] * xs + m[0, 1] * ys + m[0, 2], 0, sw - 1.000001)
    qy = np.clip(m[1, 0] * xs + m[1, 1] * ys + m[1, 2], 0, sh - 1.000001)
    xi, yi = qx.astype(int), qy.astype(int)
    fx, fy = qx - xi, qy - yi
    if src.ndim == 3:
        fx, fy = fx[..., None], fy[..., None]
    s = src.astype(np.float64)
    top = s[yi, xi] * (1 - fx) + s[yi, xi + 1] * fx
    bot = s[yi + 1, xi] * (1 - fx) + s[yi + 1, xi + 1] * fx
    return top * (1 - fy) + bot * fy


@pytest.mark.parametrize("dtype", [np.float32, np.uint8])
def test_pillow_warp_is_exact_bilinear_with_edge_repeat(dtype: type) -> None:
    rng = np.random.default_rng(4)
    src = rng.random((70, 90, 3)) if dtype is np.uint8 else rng.random((70, 90))
    src = (src * 255).astype(np.uint8) if dtype is np.uint8 else src.astype(np.float32)
    # 9 px of shift and a rotation: part of the output falls outside the source (edge pixels repeat there)
    t = align.Transform(2.0, 1.03, 0.97, 9.0, -6.5, (44.5, 34.5), (44.5, 34.5))
    got = align.warp(src, t, (70, 90))
    want = _numpy_bilinear(src, t.matrix(), (70, 90))
    assert got.dtype == src.dtype and got.shape == src.shape
    tol = 0.5 + 1e-3 if dtype is np.uint8 else 1e-4
    assert np.abs(got.astype(np.float64) - want).max() <= tol


@pytest.mark.parametrize("size", [256, 512])
def test_gate_fast_path_equals_the_sampled_grid(size: int) -> None:
    c = BI.make_case(size, seed=2, case=1, distortion="inverted")
    p = align.AlignParams()
    fixed, mov = _normalise(c.reference), _normalise(c.moving)
    fast = align.final_mi(fixed, mov, c.matrix, p)
    slow = align.final_mi(fixed, mov, c.matrix, p, factory=_Level)
    assert fast == pytest.approx(slow, rel=1e-5)
