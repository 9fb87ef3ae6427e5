"""CPU registration on the bench's cases (bench/board_images.py): accuracy per distortion at 256 and 512 px,
the analytic MI gradient against finite differences, the Pillow warp and the gate's fast path against numpy;
the finish (the backward ascent, the mean of the two estimates, the finest level's local box and its
fallback, the parameter projection) and the exact shortcuts (the gate's per-row inside test, percentiles
from a partition, the gradient threshold from a subset)."""

from __future__ import annotations

import importlib.util
import math
import statistics
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from dig_stages import align, align_newton, align_search, align_symmetric
from dig_stages.align_gate import _inside
from dig_stages.align_image import _blur3, _normalise, _percentiles
from dig_stages.align_level import LevelSampling, _kth_largest, _Level
from hypothesis import given, settings
from hypothesis import strategies as st


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
# (measured on these 3 cases at 256 / 512 px: 0.032 / 0.014, 0.055 / 0.039, 0.031 / 0.016; the issue's
# target, 0.05, is on the bench's 12 cases: 0.021 / 0.013, 0.048 / 0.032, 0.026 / 0.015)
BOUND = {"gamma": 0.04, "folded": 0.06, "inverted": 0.04}


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


def test_a_one_level_crop_finishes_in_the_inner_box_too() -> None:
    """64 px: one pyramid level, whose grid start is too far off for the inner box; refined there after the
    whole-box ascent (before: 0.086 / 0.375 / 0.085 px median over the bench's cases)."""
    assert align.derive(align.AlignParams(), (64, 64), (64, 64))["pyr_levels"] == 1
    for dist, bound in (("gamma", 0.06), ("folded", 0.15), ("inverted", 0.06)):
        errs = []
        for case in range(3):
            c = BI.make_case(64, seed=case, case=case, distortion=dist)
            errs.append(
                BI.corner_error(c.matrix, align.align(c.reference, c.moving, {}).transform.matrix(), 64)
            )
        assert statistics.median(errs) <= bound, (dist, errs)


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


def _box(size: int = 256) -> align.Box:
    p = align.AlignParams()
    return align.make_box(p, align.derive(p, (size, size), (size, size)), (size, size), (size, size))


params_rows = st.tuples(
    st.floats(-0.0174, 0.0174),
    st.floats(0.97, 1.03),
    st.floats(0.97, 1.03),
    st.floats(-8, 8),
    st.floats(-8, 8),
)


@given(params_rows)
@settings(max_examples=60, deadline=None)
def test_params_inverts_matrices_inside_the_box(row: tuple[float, ...]) -> None:
    box = _box()
    x = np.array(row)
    np.testing.assert_allclose(box.params(box.matrices(x)[0]), x, rtol=0, atol=1e-9)


def test_params_of_an_inverse_is_near_the_negated_transform() -> None:
    # the inverse of R diag(s) is diag(1/s) R^-1: no longer of the family; its projection keeps rotation and scale
    box = _box()
    x = np.array([math.radians(0.5), 1.02, 0.99, 3.0, -2.0])
    m = box.matrices(x)[0]
    inv = np.linalg.inv(np.vstack([m, [0, 0, 1]]))[:2]
    back = box.params(inv)
    assert back[0] == pytest.approx(-x[0], abs=2e-4)
    assert back[1] == pytest.approx(1 / x[1], abs=2e-4) and back[2] == pytest.approx(1 / x[2], abs=2e-4)


def test_around_is_a_box_inside_the_box_centred_on_the_start() -> None:
    box = _box()
    units = np.array([0.01, 0.01, 0.01, 1.0, 1.0])
    x = box.hi - units * 0.5  # near the upper bounds: the inner box is cut there
    near = box.around(x, units, 1.0)
    assert np.all(near.lo >= box.lo) and np.all(near.hi <= box.hi)
    np.testing.assert_allclose(near.hi, box.hi)
    np.testing.assert_allclose(near.lo, x - units)
    assert near.margin() < box.margin()  # the reason for it: samples closer to the border


def _inverse(m: np.ndarray) -> np.ndarray:
    return np.linalg.inv(np.vstack([m, [0, 0, 1]]))[:2]


def test_the_symmetric_finish_makes_the_two_directions_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    """Registering moving -> reference gives (nearly) the inverse of reference -> moving: closer with the
    finish than without it, on each case (folded intensities, where interpolation biases one direction)."""
    size = 256

    def gaps() -> list[float]:
        out = []
        for case in range(3):
            c = BI.make_case(size, seed=case, case=case, distortion="folded")
            fwd = align.align(c.reference, c.moving, {}).transform.matrix()
            bwd = align.align(c.moving, c.reference, {}).transform.matrix()
            out.append(BI.corner_error(fwd, _inverse(bwd), size))
        return out

    with_finish = gaps()
    monkeypatch.setattr(align, "symmetric", lambda box, x, *args: (x, 0))
    without = gaps()
    assert all(a < b for a, b in zip(with_finish, without, strict=True)), (with_finish, without)
    assert max(with_finish) < 0.06


def test_a_backward_estimate_that_disagrees_is_not_averaged_in(monkeypatch: pytest.MonkeyPatch) -> None:
    c = BI.make_case(256, seed=0, case=0, distortion="gamma")
    forward = align.register(c.reference, c.moving, {})

    real = align_symmetric.gauss_newton

    def off(level, box, x, units, sched, tau):  # type: ignore[no-untyped-def]
        xb, f, n, t = real(level, box, x, units, sched, tau)
        return xb + units * np.array([0, 0, 0, 3.0, 0]), f, n, t  # 3 px off in x: beyond AGREE_PX

    monkeypatch.setattr(align_symmetric, "gauss_newton", off)
    guarded = align.register(c.reference, c.moving, {})
    monkeypatch.setattr(align, "symmetric", lambda box, x, *args: (x, 0))
    alone = align.register(c.reference, c.moving, {})
    assert guarded[0].matrix() == pytest.approx(alone[0].matrix(), abs=1e-12)
    assert BI.corner_error(forward[0].matrix(), guarded[0].matrix(), 256) < 0.1


def test_the_finest_level_falls_back_to_the_whole_box_when_its_start_is_far_off() -> None:
    """From a start 3 px off in x the inner box (1 px) cannot reach the optimum: the ascent ends on its edge
    and runs again in the whole box, with samples kept further from the border."""
    c = BI.make_case(256, seed=1, case=1, distortion="gamma")
    p = align.AlignParams()
    fixed, mov = _blur3(_normalise(c.reference)), _blur3(_normalise(c.moving))
    whole = align.make_box(p, align.derive(p, fixed.shape, mov.shape), fixed.shape, mov.shape)
    units = np.array([2 / math.hypot(256, 256), 2 / 256, 2 / 256, 1.0, 1.0])
    margins: list[float] = []

    def level(lvl: int, fast: bool = False, box: align.Box = whole) -> _Level:
        margins.append(box.margin())
        return _Level(fixed, mov, 1.0, LevelSampling(64, 8192, margin=box.margin()))

    truth = np.array([math.radians(c.params[0]), *c.params[1:]])
    x, n, _, _ = align_search._finest(whole, truth + units * np.array([0, 0, 0, 3.0, 0]), units, 1.0, level)
    assert len(margins) == 2 and margins[1] == pytest.approx(whole.margin()) and margins[0] < margins[1]
    assert abs(x[3] - truth[3]) < 0.1 and n > 2
    # from a start near the optimum the inner box is enough: one level, no fallback
    margins.clear()
    align_search._finest(whole, truth, units, 1.0, level)
    assert len(margins) == 1


@given(st.integers(1, 3000), st.integers(0, 2**32 - 1))
@settings(max_examples=60, deadline=None)
def test_percentiles_equal_numpys(n: int, seed: int) -> None:
    a = np.random.default_rng(seed).random(n).astype(np.float32)
    want = [float(np.percentile(a, q)) for q in (0.1, 99.9)]
    assert _percentiles(a, (0.001, 0.999)) == pytest.approx(want, rel=1e-6, abs=1e-7)


@given(params_rows, st.integers(1, 4), st.integers(30, 90), st.integers(30, 90))
@settings(max_examples=80, deadline=None)
def test_the_gates_row_runs_equal_the_per_point_inside_test(
    row: tuple[float, ...], k: int, hm: int, wm: int
) -> None:
    box = align.make_box(
        align.AlignParams(), align.derive(align.AlignParams(), (64, 64), (hm, wm)), (64, 64), (hm, wm)
    )
    mk = box.matrices(np.array(row))[0] @ np.diag([float(k), float(k), 1.0])
    gh, gw = len(range(0, 64, k)), len(range(0, 64, k))
    xs = np.arange(gw, dtype=np.float64)
    ys = np.arange(gh, dtype=np.float64)[:, None]
    qx = mk[0, 0] * xs + (mk[0, 1] * ys + mk[0, 2])
    qy = mk[1, 0] * xs + (mk[1, 1] * ys + mk[1, 2])
    want = ((qx >= 0) & (qx <= wm - 1) & (qy >= 0) & (qy <= hm - 1)).ravel()
    got = _inside(mk, (gh, gw), (hm, wm))
    got = np.ones(gh * gw, bool) if got is None else got
    # a point within rounding of an edge may fall either way in either test
    edge = np.minimum.reduce([np.abs(qx), np.abs(qx - (wm - 1)), np.abs(qy), np.abs(qy - (hm - 1))]).ravel()
    clear = edge > 1e-6
    assert np.array_equal(got[clear], want[clear])


def test_the_subset_threshold_keeps_about_k() -> None:
    v = np.random.default_rng(0).gamma(2.0, size=60000).astype(np.float32)
    for k in (500, 4096, 20000):
        kept = int((v >= _kth_largest(v, k)).sum())
        assert abs(kept - k) < 0.1 * k, (k, kept)


def _with_blobs(img: np.ndarray, seed: int, n: int = 30) -> np.ndarray:
    """Edited content the reference lacks: dark and bright squares pasted onto the moving image."""
    rng = np.random.default_rng(seed)
    out = img.copy()
    h, w = out.shape
    for _ in range(n):
        y, x = rng.integers(0, h - 12, 2)
        s = int(rng.integers(4, 12))
        out[y : y + s, x : x + s] = rng.choice([0.05, 0.95])
    return out


def test_edited_content_does_not_pull_the_finish_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """The backward ascent samples where the forward one does (chosen on the reference's gradients): chosen
    on the moving image's own gradients, half its samples sat on the pasted squares' edges and the mean
    came out worse than the forward estimate alone (median 0.068 against 0.051 px on these cases)."""

    def errors() -> list[float]:
        out = []
        for case in range(3):
            c = BI.make_case(256, seed=case, case=case, distortion="folded")
            res = align.align(c.reference, _with_blobs(c.moving, case), {})
            out.append(BI.corner_error(c.matrix, res.transform.matrix(), 256))
        return out

    finished = errors()
    monkeypatch.setattr(align, "symmetric", lambda box, x, *args: (x, 0))
    alone = errors()
    assert statistics.median(finished) <= statistics.median(alone), (finished, alone)


def test_the_backward_samples_are_the_forward_ones_mapped() -> None:
    c = BI.make_case(256, seed=0, case=0, distortion="gamma")
    seen: list[tuple[np.ndarray, LevelSampling, tuple[int, int]]] = []

    def factory(fixed: np.ndarray, moving: np.ndarray, scale: float, s: LevelSampling) -> _Level:
        level = _Level(fixed, moving, scale, s)
        seen.append((np.stack([level.xs, level.ys]), s, fixed.shape))
        return level

    est = align.register(c.reference, c.moving, {}, level_factory=factory)[0]
    fine = [(pts, s) for pts, s, _ in seen if s.points is None and s.bins == 64 and not s.everywhere]
    back = [(pts, s) for pts, s, _ in seen if s.points is not None]
    assert len(back) == 1 and fine
    fwd_pts, back_pts = fine[-1][0], back[0][0]
    m = est.matrix()
    mapped = np.rint(
        m[:, :2] @ fwd_pts + m[:, 2:]
    )  # the final transform is within a pixel of the forward one
    have = set(map(tuple, back_pts.T.astype(int)))
    near = [
        any((int(x) + dx, int(y) + dy) in have for dx in (-1, 0, 1) for dy in (-1, 0, 1)) for x, y in mapped.T
    ]
    assert np.mean(near) > 0.95  # all but those the backward margin leaves out
    assert back_pts.shape[1] > 0.9 * fwd_pts.shape[1]
