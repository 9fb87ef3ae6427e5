"""Registration bench: dig_stages.align vs SimpleITK (Mattes MI) vs OpenCV ECC on synthetic 2048x2048 boards.

Run: .venv/bin/python bench/align.py [--size 2048] [--runs 3] [--cases 4]
Each case is a known transform off every search grid, under three intensity distortions (gamma; gamma +
fold, non-monotonic; gamma + inversion). Prints the median corner error (px), failures and wall time.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from board_images import CASES, DISTORTIONS, corner_error, make_case  # noqa: E402
from dig_stages import align  # noqa: E402

try:
    import SimpleITK as sitk
except ImportError:  # the bench still runs ours
    sitk = None
try:
    import cv2
except ImportError:
    cv2 = None

FAIL_PX = 1.0  # a corner error above this counts as a failure


def run_ours(ref: np.ndarray, mov: np.ndarray) -> np.ndarray:
    t, *_ = align.register(ref, mov, {})
    return t.matrix()


def run_sitk(ref: np.ndarray, mov: np.ndarray) -> np.ndarray:
    # AffineTransform (6 dof) because Similarity2DTransform has one isotropic scale and our cases scale x and
    # y differently; centred like ours. 3-level pyramid (shrink 4, 2, 1), Mattes MI 50 bins, 2% sampling.
    f = sitk.GetImageFromArray(ref.astype(np.float32))
    m = sitk.GetImageFromArray(mov.astype(np.float32))
    tx = sitk.AffineTransform(2)
    tx.SetCenter(((ref.shape[1] - 1) / 2, (ref.shape[0] - 1) / 2))
    reg = sitk.ImageRegistrationMethod()
    reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=50)
    reg.SetMetricSamplingStrategy(reg.RANDOM)
    reg.SetMetricSamplingPercentage(0.02, seed=1)
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetOptimizerAsRegularStepGradientDescent(
        learningRate=1.0, minStep=1e-4, numberOfIterations=200, gradientMagnitudeTolerance=1e-8
    )
    reg.SetOptimizerScalesFromPhysicalShift()
    reg.SetShrinkFactorsPerLevel([4, 2, 1])
    reg.SetSmoothingSigmasPerLevel([2, 1, 0])
    reg.SmoothingSigmasAreSpecifiedInPhysicalUnitsOff()
    reg.SetInitialTransform(tx, inPlace=False)
    out = reg.Execute(f, m)
    a = sitk.AffineTransform(sitk.CompositeTransform(out).GetNthTransform(0))
    lin = np.array(a.GetMatrix()).reshape(2, 2)
    c = np.array(a.GetCenter())
    off = c + np.array(a.GetTranslation()) - lin @ c
    return np.hstack([lin, off[:, None]])


def run_ecc(ref: np.ndarray, mov: np.ndarray) -> np.ndarray:
    # ECC needs a starting point within a few px: half resolution first, then full resolution.
    crit = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 100, 1e-6)
    warp = np.eye(2, 3, dtype=np.float32)
    half = [cv2.resize(a, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA) for a in (ref, mov)]
    _, warp = cv2.findTransformECC(half[0], half[1], warp, cv2.MOTION_AFFINE, crit, None, 5)
    # half-res pixel centres: x_full = 2 x_half + 0.5
    w = warp.astype(np.float64)
    full = np.empty((2, 3))
    full[:, :2] = w[:, :2]
    full[:, 2] = 2 * w[:, 2] + 0.5 - w[:, :2] @ np.array([0.5, 0.5])
    _, warp = cv2.findTransformECC(ref, mov, full.astype(np.float32), cv2.MOTION_AFFINE, crit, None, 5)
    return warp.astype(np.float64)


METHODS = {"dig_stages.align": run_ours, "SimpleITK": run_sitk, "OpenCV ECC": run_ecc}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--cases", type=int, default=len(CASES))
    ap.add_argument("--methods", default=",".join(METHODS))
    args = ap.parse_args()
    methods = [m for m in args.methods.split(",") if m in METHODS]
    if sitk is None and "SimpleITK" in methods:
        methods.remove("SimpleITK")
    if cv2 is None and "OpenCV ECC" in methods:
        methods.remove("OpenCV ECC")
    # errors[(method, distortion)] = per-case errors over runs; times likewise; failures counted
    errors: dict[tuple[str, str], list[float]] = {}
    times: dict[tuple[str, str], list[float]] = {}
    fails: dict[tuple[str, str], int] = {}
    run_medians: dict[tuple[str, str], list[float]] = {}
    for run in range(args.runs):
        for dist in DISTORTIONS:
            per_run: dict[str, list[float]] = {m: [] for m in methods}
            for case in range(args.cases):
                c = make_case(args.size, seed=100 * run + case, case=case, distortion=dist)
                for m in methods:
                    key = (m, dist)
                    t0 = time.perf_counter()
                    try:
                        est = METHODS[m](c.reference, c.moving)
                        err = corner_error(c.matrix, est, args.size)
                    except Exception as exc:  # noqa: BLE001 - ECC raises on inverted intensities
                        err = math.inf
                        print(f"  {m} {dist} case {case}: {type(exc).__name__}", file=sys.stderr)
                    dt = time.perf_counter() - t0
                    times.setdefault(key, []).append(dt)
                    errors.setdefault(key, []).append(err)
                    per_run[m].append(err)
                    if not err <= FAIL_PX:
                        fails[key] = fails.get(key, 0) + 1
                    print(
                        f"  run {run} {dist:8s} case {case} {m:17s} err {err:8.4f} px  {dt:6.2f} s",
                        file=sys.stderr,
                    )
            for m in methods:
                run_medians.setdefault((m, dist), []).append(statistics.median(per_run[m]))
    n = args.runs * args.cases
    print(
        f"\nsize {args.size}, {args.cases} cases x {args.runs} runs per distortion (failure: error > {FAIL_PX} px "
        "or exception)\n"
    )
    print(
        "| method | distortion | median corner error (px) | per-run medians | max | failures | median wall (s) |"
    )
    print("|---|---|---|---|---|---|---|")
    for m in methods:
        for d in DISTORTIONS:
            e, t = errors[(m, d)], times[(m, d)]
            ok = [x for x in e if math.isfinite(x)]
            runs = ", ".join(f"{x:.4f}" if math.isfinite(x) else "inf" for x in run_medians[(m, d)])
            print(
                f"| {m} | {d} | {statistics.median(e):.4f} | {runs} | {max(ok) if ok else math.inf:.4f} | "
                f"{fails.get((m, d), 0)}/{n} | {statistics.median(t):.2f} |"
            )
    if "SimpleITK" in methods:
        ours = statistics.median([x for d in DISTORTIONS for x in times[("dig_stages.align", d)]])
        theirs = statistics.median([x for d in DISTORTIONS for x in times[("SimpleITK", d)]])
        print(
            f"\nwall time ratio dig_stages.align / SimpleITK: {ours / theirs:.2f} ({ours:.2f} s / {theirs:.2f} s)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
