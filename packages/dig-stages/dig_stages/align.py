"""Mutual-information registration under a similarity transform (rotation, x/y scale, shift), coarse to fine.

The public API and the `align` step's CLI; the parts live by job in align_types (params, transform, result),
align_image (grey levels, pyramids), align_level (the MI evaluator of one level), align_search (box, grids,
searches), align_newton (the CPU's Gauss-Newton ascent), align_symmetric (the CPU's inverse-consistent
finish), align_gate (the reported MI) and align_warp (the resampling). Their public names are re-exported
here.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from dig_stages.align_gate import GATE_SAMPLES, final_mi
from dig_stages.align_image import _blur3, _normalise, _pyramid, _resize_bilinear, to_gray
from dig_stages.align_level import LevelSampling, _Level, mutual_information
from dig_stages.align_newton import level_matrices, mi_many, smooth_joint
from dig_stages.align_search import COARSE_MIN_DIM, Box, derive, make_box, search, search_newton
from dig_stages.align_symmetric import symmetric
from dig_stages.align_types import DEFAULT_SAMPLES, AlignParams, AlignResult, Transform
from dig_stages.align_warp import warp

__all__ = [
    "COARSE_BINS",
    "COARSE_MIN_DIM",
    "COARSE_SAMPLE_DIV",
    "DEFAULT_SAMPLES",
    "GATE_SAMPLES",
    "AlignParams",
    "AlignResult",
    "Box",
    "LevelSampling",
    "Transform",
    "align",
    "derive",
    "final_mi",
    "level_matrices",
    "main",
    "make_box",
    "mi_many",
    "mutual_information",
    "register",
    "search",
    "search_newton",
    "smooth_joint",
    "to_gray",
    "warp",
]

COARSE_BINS = 32  # coarse levels hold a few thousand samples: 64x64 bins would be mostly empty
COARSE_SAMPLE_DIV = 4


def register(
    reference: np.ndarray,
    moving: np.ndarray,
    params: AlignParams | dict[str, Any] | None = None,
    level_factory: Callable[..., Any] | None = None,
) -> tuple[Transform, float, float, int, int]:
    """Find the transform mapping reference pixels onto the moving image that maximises MI.

    Returns (transform, MI, NMI, pyramid levels, MI evaluations). `search_newton`: grid search at the top
    pyramid level (shift, then rotation and scale), then quasi-Newton MI ascent at every level to full res,
    the finest in a ±1 px box around its start; then `symmetric`: the finest level's ascent the other way
    round, and the mean of the two estimates. `level_factory` swaps the MI evaluator (same signature as
    `_Level`).
    """
    p = params if isinstance(params, AlignParams) else AlignParams.from_dict(params)
    fixed = _normalise(to_gray(reference))
    mov = _normalise(to_gray(moving))
    d = derive(p, fixed.shape, mov.shape)
    resize = (1.0, 1.0)
    if not p.no_resize and mov.shape != fixed.shape:
        resize = (mov.shape[1] / fixed.shape[1], mov.shape[0] / fixed.shape[0])
        mov = _resize_bilinear(mov, fixed.shape)
    levels = d["pyr_levels"]
    fpyr, mpyr = _pyramid(fixed, levels), _pyramid(mov, levels)
    # a light blur at full resolution damps MI's interpolation artefact (a bias towards whole-pixel shifts)
    fpyr[0], mpyr[0] = _blur3(fpyr[0]), _blur3(mpyr[0])
    box = make_box(p, d, fixed.shape, mov.shape)
    margin = box.margin()
    factory = level_factory or _Level
    # the finest level is registered both ways (align_symmetric): each direction has half the samples
    fine = max(1, p.samples // 2)

    def level(lvl: int, fast: bool = False, box: Box | None = None) -> Any:
        """The evaluator of level `lvl`; its samples keep clear of the border by what `box` (default: the
        whole search box) can move them."""
        bins = p.bins if lvl == 0 else min(p.bins, COARSE_BINS)
        # levels above the finest only carry the search down: a quarter of the samples is plenty there
        n = fine if lvl == 0 and not fast else max(1, p.samples // COARSE_SAMPLE_DIV)
        m = margin if box is None else box.margin()
        return factory(fpyr[lvl], mpyr[lvl], float(2**lvl), LevelSampling(bins, n, margin=m))

    x, evals, tau, finest = search_newton(box, p, d, level)
    x, n = symmetric(box, x, (fpyr[0], mpyr[0]), finest, factory, tau)
    evals += n
    t = Transform(
        math.degrees(x[0]),
        x[1] * resize[0],
        x[2] * resize[1],
        x[3] * resize[0],
        x[4] * resize[1],
        box.cf,
        ((moving.shape[1] - 1) / 2, (moving.shape[0] - 1) / 2),
    )
    mi, nmi = final_mi(fixed, mov, box.matrices(x)[0], p, level_factory)
    return t, mi, nmi, levels, evals + 1


def align(
    reference: np.ndarray, moving: np.ndarray, params: AlignParams | dict[str, Any] | None = None
) -> AlignResult:
    """Register `moving` to `reference` and warp it into the reference frame (size, pixel grid)."""
    p = params if isinstance(params, AlignParams) else AlignParams.from_dict(params)
    t0 = time.perf_counter()
    t, mi, nmi, levels, evals = register(reference, moving, p)
    img = warp(moving, t, np.asarray(reference).shape[:2], p.interp)
    passed = p.min_mi is None or mi >= p.min_mi
    return AlignResult(img, t, mi, nmi, passed, time.perf_counter() - t0, levels, evals)


def _load(path: str) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB") if im.mode not in ("L", "I;16", "RGB") else im)


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="dig_stages align")
    ap.add_argument("--spec", help="JSON spec: reference, moving, output, metadata, align_params")
    ap.add_argument("--reference")
    ap.add_argument("--moving")
    ap.add_argument("--output")
    ap.add_argument("--metadata", help="default: <output>.json")
    ap.add_argument(
        "--apply-to", nargs="*", default=[], help="more images (e.g. masks) to warp with the same transform"
    )
    ap.add_argument("--interp", choices=("bilinear", "nearest"))
    ap.add_argument("--min-mi", type=float)
    return ap


def _spec(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    """(spec, align_params): the JSON spec with the command-line flags over it."""
    spec: dict[str, Any] = json.loads(Path(args.spec).read_text()) if args.spec else {}
    for k in ("reference", "moving", "output", "metadata"):
        if getattr(args, k):
            spec[k] = getattr(args, k)
    ap_params = dict(spec.get("align_params") or {})
    if args.interp:
        ap_params["interp"] = args.interp
    if args.min_mi is not None:
        ap_params["min_mi"] = args.min_mi
    return spec, ap_params


def _write(res: AlignResult, spec: dict[str, Any], params: AlignParams, apply_to: list[str]) -> None:
    """The aligned image, the --apply-to images warped alike, and the metadata JSON."""
    from PIL import Image

    meta = res.metadata() | {
        "reference": spec["reference"],
        "moving": spec["moving"],
        "interp": params.interp,
    }
    if params.ignored:
        meta["ignored_params"] = params.ignored
    out = Path(spec["output"])
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(res.image).save(out)
    for extra in apply_to:
        # masks/label maps: nearest, so no new label values appear at edges
        warped = warp(_load(extra), res.transform, res.image.shape[:2], "nearest")
        Image.fromarray(warped).save(out.parent / f"{Path(extra).stem}_aligned{Path(extra).suffix}")
    Path(spec.get("metadata") or f"{out}.json").write_text(json.dumps(meta, indent=1) + "\n")


def main(argv: list[str]) -> int:
    """`align`: warp --moving onto --reference; writes the image and a JSON with the transform and MI."""
    args = _parser().parse_args(argv)
    spec, ap_params = _spec(args)
    missing = [k for k in ("reference", "moving", "output") if not spec.get(k)]
    if missing:
        print(f"ERROR: align needs {', '.join(missing)} (spec key or --flag)", file=sys.stderr)
        return 1
    try:
        params = AlignParams.from_dict(ap_params)
    except ValueError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 1
    res = align(_load(spec["reference"]), _load(spec["moving"]), params)
    _write(res, spec, params, args.apply_to)
    t = res.transform
    print(
        f"align: rot {t.rot_deg:.4f} deg, scale ({t.sx:.5f}, {t.sy:.5f}), "
        f"shift ({t.tx:.2f}, {t.ty:.2f}) px, MI {res.mi:.4f}, {res.seconds:.2f} s"
    )
    if not res.passed:
        print(
            f"ERROR: MI {res.mi:.4f} below min_mi {params.min_mi}; the image does not match the reference",
            file=sys.stderr,
        )
        return 2
    return 0
