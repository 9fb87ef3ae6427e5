"""Registration bench per crop size: dig_stages.align vs SimpleITK (Mattes MI) vs OpenCV ECC, one thread each.

Run: python bench/align.py [--sizes 256,512] [--runs 3] [--cases 4]
Each case is a known transform off every search grid, under three intensity distortions (gamma; gamma +
fold, non-monotonic; gamma + inversion). Prints, per size, the median corner error (px), failures and the
median wall time of registration + warp, and the dig / SimpleITK time ratio measured in the same run.
Threads are pinned to one (OMP/OpenBLAS/MKL, OpenCV, SimpleITK), as in the image-edit pod (1 CPU).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"  # before numpy is imported

import argparse  # noqa: E402
import math  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "packages" / "dig-stages"))

from board_images import CASES, DISTORTIONS, corner_error, make_case  # noqa: E402
from dig_stages import align  # noqa: E402

try:
    import SimpleITK as sitk

    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
except ImportError:  # the bench still runs ours
    sitk = None
try:
    import cv2

    cv2.setNumThreads(1)
except ImportError:
    cv2 = None

FAIL_PX = 1.0  # a corner error above this counts as a failure


def run_ours(ref: np.ndarray, mov: np.ndarray) -> np.ndarray:
    return align.align(ref, mov, {}).transform.matrix()  # registration + warp, the cookbook defaults


def _shrink_factors(shape: tuple[int, int]) -> list[int]:
    # the same pyramid as ours: the auto-derived number of levels, halving each time
    levels = align.derive(align.AlignParams(), shape, shape)["pyr_levels"]
    return [2**k for k in range(levels - 1, -1, -1)]


def run_sitk(ref: np.ndarray, mov: np.ndarray) -> np.ndarray:
    # AffineTransform (6 dof, a superset of our similarity with x/y scale: Similarity2DTransform has one
    # isotropic scale and the cases scale x and y differently); centred like ours. Mattes MI, 50 bins, 10%
    # sampling, linear interpolation, our pyramid's shrink factors; then the warp, as ours does.
    f = sitk.GetImageFromArray(ref.astype(np.float32))
    m = sitk.GetImageFromArray(mov.astype(np.float32))
    tx = sitk.AffineTransform(2)
    tx.SetCenter(((ref.shape[1] - 1) / 2, (ref.shape[0] - 1) / 2))
    reg = sitk.ImageRegistrationMethod()
    reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=50)
    reg.SetMetricSamplingStrategy(reg.RANDOM)
    reg.SetMetricSamplingPercentage(0.10, seed=1)
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetOptimizerAsRegularStepGradientDescent(
        learningRate=1.0, minStep=1e-4, numberOfIterations=200, gradientMagnitudeTolerance=1e-8
    )
    reg.SetOptimizerScalesFromPhysicalShift()
    shrink = _shrink_factors(ref.shape)
    reg.SetShrinkFactorsPerLevel(shrink)
    reg.SetSmoothingSigmasPerLevel([s / 2 for s in shrink])
    reg.SmoothingSigmasAreSpecifiedInPhysicalUnitsOff()
    reg.SetInitialTransform(tx, inPlace=False)
    out = reg.Execute(f, m)
    a = sitk.AffineTransform(sitk.CompositeTransform(out).GetNthTransform(0))
    sitk.Resample(m, f, a, sitk.sitkLinear, 0.0)
    lin = np.array(a.GetMatrix()).reshape(2, 2)
    c = np.array(a.GetCenter())
    off = c + np.array(a.GetTranslation()) - lin @ c
    return np.hstack([lin, off[:, None]])


def run_ecc(ref: np.ndarray, mov: np.ndarray) -> np.ndarray:
    # ECC needs a starting point within a few px: half resolution first, then full resolution; then the warp.
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
    cv2.warpAffine(mov, warp, ref.shape[::-1], flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
    return warp.astype(np.float64)


METHODS = {"dig_stages.align": run_ours, "SimpleITK": run_sitk, "OpenCV ECC": run_ecc}


def bench_size(size: int, runs: int, cases: int, methods: list[str]) -> dict:
    errors: dict[tuple[str, str], list[float]] = {}
    times: dict[tuple[str, str], list[float]] = {}
    for run in range(runs):
        for dist in DISTORTIONS:
            for case in range(cases):
                c = make_case(size, seed=100 * run + case, case=case, distortion=dist)
                for m in methods:
                    t0 = time.perf_counter()
                    try:
                        err = corner_error(c.matrix, METHODS[m](c.reference, c.moving), size)
                    except Exception as exc:  # noqa: BLE001 - ECC raises on inverted intensities
                        err = math.inf
                        print(f"  {size} {m} {dist} case {case}: {type(exc).__name__}", file=sys.stderr)
                    times.setdefault((m, dist), []).append(time.perf_counter() - t0)
                    errors.setdefault((m, dist), []).append(err)
    return {"errors": errors, "times": times}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="256,512", help="crop sides in px, comma-separated")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--cases", type=int, default=len(CASES))
    ap.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated, of: {', '.join(METHODS)}")
    args = ap.parse_args()
    methods = args.methods.split(",")
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        ap.error(f"unknown method(s) {', '.join(unknown)}; choose from: {', '.join(METHODS)}")
    if sitk is None and "SimpleITK" in methods:
        methods.remove("SimpleITK")
    if cv2 is None and "OpenCV ECC" in methods:
        methods.remove("OpenCV ECC")
    n = args.runs * args.cases
    print(
        f"one thread; {args.cases} cases x {args.runs} runs per distortion; failure: error > {FAIL_PX} px or exception; "
        f"load average at start {os.getloadavg()[0]:.2f}\n"
    )
    print(
        "| size | method | distortion | median corner error (px) | max | failures | median ms (register + warp) |"
    )
    print("|---|---|---|---|---|---|---|")
    ratios = []
    for size in (int(s) for s in args.sizes.split(",")):
        r = bench_size(size, args.runs, args.cases, methods)
        med_t = {}
        for m in methods:
            for d in DISTORTIONS:
                e, t = r["errors"][(m, d)], r["times"][(m, d)]
                ok = [x for x in e if math.isfinite(x)]
                fails = sum(not x <= FAIL_PX for x in e)
                print(
                    f"| {size} | {m} | {d} | {statistics.median(e):.4f} | {max(ok) if ok else math.inf:.4f} | "
                    f"{fails}/{n} | {1000 * statistics.median(t):.1f} |"
                )
            med_t[m] = statistics.median([x for d in DISTORTIONS for x in r["times"][(m, d)]])
        if "SimpleITK" in methods:
            ours, theirs = med_t["dig_stages.align"], med_t["SimpleITK"]
            ratios.append(f"{size}: {ours / theirs:.2f} ({1000 * ours:.1f} ms / {1000 * theirs:.1f} ms)")
    if ratios:
        print("\ntime ratio dig_stages.align / SimpleITK (median over distortions): " + "; ".join(ratios))
    print(f"load average at end {os.getloadavg()[0]:.2f} (a shared machine inflates every column alike)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
