"""Registration beyond the bench's square cases: other shapes, sizes and contents, dig vs SimpleITK vs ECC.

Run: python bench/align_scenarios.py [--seeds 4] [--methods dig_stages.align,SimpleITK,OpenCV ECC]
Each scenario is a known transform of a synthetic board (bench/board_images.py) with noise; some paste
edited content the reference lacks (dark and bright squares, as an image edit might add), one gives the
moving image another size (no_resize: the scale is searched), one puts the rotation at the edge of the
cookbook's range. Prints the median and largest corner error (px) per scenario and method; one thread.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import align as bench_align  # noqa: E402  (bench/align.py: pins threads to one before numpy is imported)
import numpy as np  # noqa: E402
from board_images import _bilinear, board, distort  # noqa: E402


@dataclass(frozen=True)
class Scenario:
    shape: tuple[int, int]  # reference (h, w)
    params: tuple[float, float, float, float, float]  # rotation deg, scale x / y, shift x / y px
    distortion: str = "gamma"
    moving_shape: tuple[int, int] | None = None
    squares: int = 0  # pasted squares of edited content
    align_params: dict = field(default_factory=dict)


SCENARIOS = {
    "non-square 200x320": Scenario((200, 320), (0.4, 1.01, 0.995, 2.1, -1.3)),
    "tiny 40x40 (one level)": Scenario((40, 40), (0.3, 1.005, 0.998, 0.7, -0.4)),
    "identity 256": Scenario((256, 256), (0.0, 1.0, 1.0, 0.0, 0.0)),
    "whole-pixel shift 256": Scenario((256, 256), (0.0, 1.0, 1.0, 3.0, -2.0)),
    "edited squares 256": Scenario((256, 256), (0.5, 1.012, 0.992, 1.5, -0.8), squares=40),
    "edited squares, folded 512": Scenario((512, 512), (-0.6, 0.99, 1.01, -2.5, 1.2), "folded", squares=120),
    "moving 1.5x larger 200": Scenario(
        (200, 200),
        (0.2, 1.5, 1.5, 1.0, 2.0),
        moving_shape=(300, 300),
        align_params={"sx_range": [1.45, 1.55, 0.01], "sy_range": [1.45, 1.55, 0.01]},
    ),
    "rotation at the range's edge 256": Scenario((256, 256), (0.95, 1.0, 1.0, 0.5, 0.5)),
    "shift 7 px 256": Scenario((256, 256), (0.1, 1.0, 1.0, 7.0, -6.5)),
}


def make(sc: Scenario, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(reference, moving, true 2x3 matrix reference px -> moving px), as bench/board_images.make_case."""
    rng = np.random.default_rng(seed + 1000)
    h, w = sc.shape
    hm, wm = sc.moving_shape or sc.shape
    margin = max(16, max(h, w, hm, wm) // 8)
    big = board(max(h, w, hm, wm) + 2 * margin, seed)
    ref = big[margin : margin + h, margin : margin + w]
    rot, sx, sy, tx, ty = sc.params
    a = math.radians(rot)
    lin = np.array([[math.cos(a) * sx, -math.sin(a) * sy], [math.sin(a) * sx, math.cos(a) * sy]])
    cf, cm = np.array([(w - 1) / 2, (h - 1) / 2]), np.array([(wm - 1) / 2, (hm - 1) / 2])
    m = np.hstack([lin, (cm + np.array([tx, ty]) - lin @ cf)[:, None]])
    inv = np.linalg.inv(np.vstack([m, [0, 0, 1]]))[:2]
    ys, xs = np.mgrid[0:hm, 0:wm].astype(np.float64)
    px = inv[0, 0] * xs + inv[0, 1] * ys + inv[0, 2] + margin
    py = inv[1, 0] * xs + inv[1, 1] * ys + inv[1, 2] + margin
    mov = distort(_bilinear(big, px, py), sc.distortion)
    for _ in range(sc.squares):
        y, x = rng.integers(0, hm - 12), rng.integers(0, wm - 12)
        s = int(rng.integers(4, 12))
        mov[y : y + s, x : x + s] = rng.choice([0.05, 0.95])
    mov = np.clip(mov + 0.02 * rng.standard_normal(mov.shape), 0, 1).astype(np.float32)
    ref = np.clip(ref + 0.02 * rng.standard_normal(ref.shape), 0, 1).astype(np.float32)
    return ref, mov, m


def corner_error(true_m: np.ndarray, est_m: np.ndarray, shape: tuple[int, int]) -> float:
    h, w = shape
    c = np.array([[0, 0, 1], [w - 1, 0, 1], [0, h - 1, 1], [w - 1, h - 1, 1]], float)
    return float(np.mean(np.linalg.norm(c @ true_m.T - c @ est_m.T, axis=1)))


def estimate(method: str, sc: Scenario, ref: np.ndarray, mov: np.ndarray) -> np.ndarray:
    if method == "dig_stages.align":
        return bench_align.align.align(ref, mov, sc.align_params).transform.matrix()
    if method == "OpenCV ECC" and sc.moving_shape:
        raise ValueError("ECC needs images of one size")
    return bench_align.METHODS[method](ref, mov)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--methods", default=",".join(bench_align.METHODS))
    args = ap.parse_args()
    methods = [m for m in args.methods.split(",") if m in bench_align.METHODS]
    if bench_align.sitk is None and "SimpleITK" in methods:
        methods.remove("SimpleITK")
    if bench_align.cv2 is None and "OpenCV ECC" in methods:
        methods.remove("OpenCV ECC")
    print(f"one thread; {args.seeds} seeds per scenario; corner error (px) median / max; failures > 1 px\n")
    print("| scenario | " + " | ".join(methods) + " |")
    print("|---|" + "---|" * len(methods))
    for name, sc in SCENARIOS.items():
        cells = []
        for m in methods:
            errs, secs = [], []
            for seed in range(args.seeds):
                ref, mov, true_m = make(sc, seed)
                t0 = time.perf_counter()
                try:
                    errs.append(corner_error(true_m, estimate(m, sc, ref, mov), sc.shape))
                except Exception:  # noqa: BLE001 - ECC raises where it does not converge
                    errs.append(math.inf)
                secs.append(time.perf_counter() - t0)
            fails = sum(not e <= 1.0 for e in errs)
            cells.append(
                f"{statistics.median(errs):.3f} / {max(errs):.3f}"
                + (f" ({fails} failed)" if fails else "")
                + f", {1000 * statistics.median(secs):.0f} ms"
            )
        print(f"| {name} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
