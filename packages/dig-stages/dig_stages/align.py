"""Mutual-information registration under a similarity transform (rotation, x/y scale, shift), coarse to fine."""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

# Fine levels are sampled: a fixed, jittered-grid subset keeps the objective deterministic (smooth
# for the parabolic refinement) while bounding the cost of one MI evaluation.
DEFAULT_SAMPLES = 1 << 16
COARSE_MIN_DIM = 96  # the auto pyramid stops before the top level would be smaller than this


@dataclass
class AlignParams:
    """Cookbook `data_processing.alignment` / `registration` keys (stage_algorithms.md §2, §3)."""

    rot_range_deg: tuple[float, float, float] = (-1.0, 1.0, 0.1)
    shift_step: float = 2.0
    bins: int = 64
    interp: str = "bilinear"
    no_resize: bool = True
    # auto-derived from the moving vs reference dims when None
    sx_range: tuple[float, float, float] | None = None
    sy_range: tuple[float, float, float] | None = None
    shift_range: float | None = None
    pyr_levels: int | None = None
    min_mi: float | None = None
    samples: int = DEFAULT_SAMPLES
    seed: int = 0
    ignored: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> AlignParams:
        """Build from a cookbook block; unknown keys (e.g. `gpu`) are kept in `ignored` for the metadata."""
        d = dict(d or {})
        known = {k for k in cls.__dataclass_fields__ if k != "ignored"}
        kw: dict[str, Any] = {}
        for k in list(d):
            if k in known:
                v = d.pop(k)
                if k in ("rot_range_deg", "sx_range", "sy_range") and v is not None:
                    v = tuple(float(x) for x in v)
                    if len(v) != 3:
                        raise ValueError(f"align_params.{k}: expected [min, max, step], got {list(v)}")
                kw[k] = v
        if kw.get("interp", "bilinear") not in ("bilinear", "nearest"):
            raise ValueError(f"align_params.interp: expected bilinear or nearest, got {kw['interp']!r}")
        return cls(**kw, ignored=d)


@dataclass
class Transform:
    """Maps reference pixel p to moving pixel q = c_m + R(rot) diag(sx, sy) (p - c_f) + (tx, ty).

    Pixel centres sit at integer coordinates; c_f and c_m are the image centres ((w-1)/2, (h-1)/2).
    """

    rot_deg: float
    sx: float
    sy: float
    tx: float
    ty: float
    ref_center: tuple[float, float]
    mov_center: tuple[float, float]

    def matrix(self) -> np.ndarray:
        """2x3 affine matrix (reference -> moving pixel coordinates)."""
        a = math.radians(self.rot_deg)
        c, s = math.cos(a), math.sin(a)
        lin = np.array([[c * self.sx, -s * self.sy], [s * self.sx, c * self.sy]])
        cf = np.array(self.ref_center)
        off = np.array(self.mov_center) + np.array([self.tx, self.ty]) - lin @ cf
        return np.hstack([lin, off[:, None]])

    def apply(self, pts: np.ndarray) -> np.ndarray:
        """Map (N, 2) reference points (x, y) to moving points."""
        m = self.matrix()
        return np.asarray(pts, float) @ m[:, :2].T + m[:, 2]


@dataclass
class AlignResult:
    """The warped image and what registration found."""

    image: np.ndarray
    transform: Transform
    mi: float
    nmi: float
    passed: bool
    seconds: float
    levels: int
    evaluations: int

    def metadata(self) -> dict[str, Any]:
        t = asdict(self.transform)
        t["matrix"] = self.transform.matrix().round(8).tolist()
        return {
            "transform": t,
            "mi": round(self.mi, 6),
            "nmi": round(self.nmi, 6),
            "passed": self.passed,
            "seconds": round(self.seconds, 4),
            "pyr_levels": self.levels,
            "evaluations": self.evaluations,
        }


class RegistrationRejected(RuntimeError):
    """MI after registration is below `min_mi` (the wrong image, or no overlap)."""


def to_gray(img: np.ndarray) -> np.ndarray:
    """Luminance as float32 (Rec. 601 weights; alpha dropped)."""
    a = np.asarray(img)
    if a.ndim == 3:
        a = (
            a[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
            if a.shape[2] >= 3
            else a[..., 0].astype(np.float32)
        )
    return a.astype(np.float32, copy=False)


def _normalise(g: np.ndarray) -> np.ndarray:
    # Robust range so a few hot pixels do not squeeze the histogram into a handful of bins.
    lo, hi = np.percentile(g[:: max(1, g.shape[0] // 256), :: max(1, g.shape[1] // 256)], [0.1, 99.9])
    if hi <= lo:
        hi = lo + 1.0
    return np.clip((g - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)


def _down2(g: np.ndarray) -> np.ndarray:
    h, w = g.shape[0] // 2 * 2, g.shape[1] // 2 * 2
    g = g[:h, :w]
    return 0.25 * (g[0::2, 0::2] + g[1::2, 0::2] + g[0::2, 1::2] + g[1::2, 1::2])


def _pyramid(g: np.ndarray, levels: int) -> list[np.ndarray]:
    pyr = [g]
    for _ in range(levels - 1):
        pyr.append(_down2(pyr[-1]))
    return pyr


def _sample(
    img: np.ndarray, x: np.ndarray, y: np.ndarray, nearest: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Bilinear (or nearest) samples of a 2D image at float coords; returns (values, inside-mask)."""
    h, w = img.shape
    inside = (x >= 0) & (x <= w - 1) & (y >= 0) & (y <= h - 1)
    flat = img.reshape(-1)
    if nearest:
        xi = np.clip(np.rint(x), 0, w - 1).astype(np.intp)
        yi = np.clip(np.rint(y), 0, h - 1).astype(np.intp)
        return flat[yi * w + xi], inside
    xc = np.clip(x, 0, w - 1.000001)
    yc = np.clip(y, 0, h - 1.000001)
    xi = xc.astype(np.intp)
    yi = yc.astype(np.intp)
    fx = (xc - xi).astype(np.float32)
    fy = (yc - yi).astype(np.float32)
    idx = yi * w + xi
    if w == 1 or h == 1:  # degenerate strip: no neighbour to interpolate with
        return flat[idx], inside
    top = flat[idx] + fx * (flat[idx + 1] - flat[idx])
    bot = flat[idx + w] + fx * (flat[idx + w + 1] - flat[idx + w])
    return top + fy * (bot - top), inside


def mutual_information(joint: np.ndarray) -> tuple[float, float]:
    """(MI in nats, normalised MI (H(F)+H(M))/H(F,M)) of a joint histogram."""
    tot = joint.sum()
    if tot <= 0:
        return 0.0, 1.0
    p = joint / tot
    pf = p.sum(axis=1)
    pm = p.sum(axis=0)
    nz = p > 0
    hj = -float(np.sum(p[nz] * np.log(p[nz])))
    hf = -float(np.sum(pf[pf > 0] * np.log(pf[pf > 0])))
    hm = -float(np.sum(pm[pm > 0] * np.log(pm[pm > 0])))
    return hf + hm - hj, (hf + hm) / hj if hj > 0 else 1.0


class _Level:
    """One pyramid level: fixed samples (pre-binned) and the moving image, ready for MI evaluations."""

    def __init__(
        self, fixed: np.ndarray, moving: np.ndarray, scale: float, bins: int, samples: int, seed: int
    ):
        self.moving = moving
        self.scale = scale
        self.bins = bins
        h, w = fixed.shape
        n = h * w
        if n <= samples:
            ys, xs = np.mgrid[0:h, 0:w]
            xs, ys = xs.ravel(), ys.ravel()
        else:
            # Jittered grid: evenly spread, fixed for the level, sorted row-major for cache-friendly gathers.
            step = math.sqrt(n / samples)
            gx = np.arange(0, w - step / 2, step)
            gy = np.arange(0, h - step / 2, step)
            rng = np.random.default_rng(seed)
            xs = (gx[None, :] + rng.random((gy.size, gx.size)) * step).astype(np.intp).ravel()
            ys = (gy[:, None] + rng.random((gy.size, gx.size)) * step).astype(np.intp).ravel()
            xs, ys = np.minimum(xs, w - 1), np.minimum(ys, h - 1)
        # level pixel -> level-0 pixel, so every level evaluates the same level-0 transform
        self.x0 = xs * scale + (scale - 1) / 2
        self.y0 = ys * scale + (scale - 1) / 2
        fv = fixed[ys, xs]
        self.fbin = (np.minimum((fv * bins).astype(np.intp), bins - 1) * bins).astype(np.intp)
        self.evals = 0

    def joint(self, m: np.ndarray) -> np.ndarray:
        s = self.scale
        qx = m[0, 0] * self.x0 + m[0, 1] * self.y0 + m[0, 2]
        qy = m[1, 0] * self.x0 + m[1, 1] * self.y0 + m[1, 2]
        v, inside = _sample(self.moving, (qx - (s - 1) / 2) / s, (qy - (s - 1) / 2) / s)
        # Linear binning on the moving side keeps MI continuous in the parameters (hard bins make it a
        # staircase and the parabolic refinement would stall at ~0.2 px).
        u = v * (self.bins - 1)
        j0 = np.minimum(u.astype(np.intp), self.bins - 2)
        wt = (u - j0).astype(np.float64)
        ins = inside.astype(np.float64)
        idx = self.fbin + j0
        nb = self.bins * self.bins
        self.evals += 1
        joint = np.bincount(idx, weights=(1.0 - wt) * ins, minlength=nb)
        joint += np.bincount(idx + 1, weights=wt * ins, minlength=nb)
        return joint.reshape(self.bins, self.bins)

    def mi(self, m: np.ndarray) -> float:
        return mutual_information(self.joint(m))[0]


def _grid(r: tuple[float, float, float], min_step: float) -> np.ndarray:
    lo, hi, step = r
    if hi < lo:
        lo, hi = hi, lo
    step = max(abs(step), min_step)
    if step <= 0:
        return np.array([(lo + hi) / 2])
    n = int(math.floor((hi - lo) / step + 1e-9)) + 1
    vals = lo + step * np.arange(n)
    # centre the grid on the range so an even split does not bias one side
    return vals + ((hi - vals[-1]) / 2 if n > 1 else (hi - lo) / 2)


def derive(params: AlignParams, ref_shape: tuple[int, int], mov_shape: tuple[int, int]) -> dict[str, Any]:
    """Fill the auto-derived keys (scale and shift ranges, pyramid levels) from the two image sizes."""
    hf, wf = ref_shape
    hm, wm = mov_shape
    rx, ry = wm / wf, hm / hf
    if not params.no_resize:
        rx = ry = 1.0
    sx = params.sx_range or (rx * 0.97, rx * 1.03, rx * 0.01)
    sy = params.sy_range or (ry * 0.97, ry * 1.03, ry * 0.01)
    shift = params.shift_range if params.shift_range is not None else max(8.0, math.ceil(0.02 * max(hf, wf)))
    levels = params.pyr_levels
    if not levels:
        levels = 1 + max(0, int(math.floor(math.log2(max(1.0, min(hf, wf) / COARSE_MIN_DIM)))))
    levels = max(1, min(int(levels), 1 + int(math.log2(max(2, min(hf, wf, hm, wm) // 8)))))
    return {"sx_range": tuple(sx), "sy_range": tuple(sy), "shift_range": float(shift), "pyr_levels": levels}


def _resize_bilinear(g: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    h, w = shape
    ys = (np.arange(h) + 0.5) * g.shape[0] / h - 0.5
    xs = (np.arange(w) + 0.5) * g.shape[1] / w - 0.5
    yy, xx = np.meshgrid(ys, xs, indexing="ij")
    return _sample(g, xx.ravel(), yy.ravel())[0].reshape(h, w)


def register(
    reference: np.ndarray,
    moving: np.ndarray,
    params: AlignParams | dict[str, Any] | None = None,
    level_factory: Callable[..., Any] | None = None,
) -> tuple[Transform, float, float, int, int]:
    """Find the transform mapping reference pixels onto the moving image that maximises MI.

    Returns (transform, MI, NMI, pyramid levels, MI evaluations). Grid search at the top pyramid level
    (shift, then rotation x scale), then parabolic coordinate refinement at every level down to full res.
    `level_factory` swaps the MI evaluator (same signature as `_Level`; align_torch passes a GPU one).
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
    hf, wf = fixed.shape
    cf = ((wf - 1) / 2, (hf - 1) / 2)
    cm = ((mov.shape[1] - 1) / 2, (mov.shape[0] - 1) / 2)
    half_diag = 0.5 * math.hypot(wf, hf)

    def matrix(x: np.ndarray) -> np.ndarray:
        return Transform(math.degrees(x[0]), x[1], x[2], x[3], x[4], cf, cm).matrix()

    rot = p.rot_range_deg
    sxr, syr, shift = d["sx_range"], d["sy_range"], d["shift_range"]
    x = np.array(
        [math.radians((rot[0] + rot[1]) / 2), (sxr[0] + sxr[1]) / 2, (syr[0] + syr[1]) / 2, 0.0, 0.0]
    )
    lo = np.array([math.radians(min(rot[:2])), min(sxr[:2]), min(syr[:2]), -shift, -shift])
    hi = np.array([math.radians(max(rot[:2])), max(sxr[:2]), max(syr[:2]), shift, shift])
    evals = 0
    best = -np.inf
    for lvl in range(levels - 1, -1, -1):
        s = float(2**lvl)
        L = (level_factory or _Level)(fpyr[lvl], mpyr[lvl], s, p.bins, p.samples, p.seed + lvl)

        def f(v: np.ndarray, L: _Level = L) -> float:
            return L.mi(matrix(np.clip(v, lo, hi)))

        # one unit moves the reference corners by about one pixel of this level
        units = np.array([s / half_diag, 2 * s / wf, 2 * s / hf, s, s])
        if lvl == levels - 1:
            x, best = _coarse_search(f, x, lo, hi, units, rot, sxr, syr, p.shift_step)
        best = f(x)
        x, best = _refine(
            f, x, best, units, h_start=1.0 if lvl == levels - 1 else 0.5, h_min=0.02 if lvl == 0 else 0.25
        )
        x = np.clip(x, lo, hi)
        evals += L.evals
    # MI/NMI as optimised: the finest level's samples, linear binning on the moving side
    t = Transform(
        math.degrees(x[0]),
        x[1] * resize[0],
        x[2] * resize[1],
        x[3] * resize[0],
        x[4] * resize[1],
        cf,
        ((moving.shape[1] - 1) / 2, (moving.shape[0] - 1) / 2),
    )
    mi, nmi = mutual_information(L.joint(matrix(x)))
    return t, mi, nmi, levels, evals + 1


def _coarse_search(
    f: Callable[[np.ndarray], float],
    x: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    units: np.ndarray,
    rot: tuple[float, float, float],
    sxr: tuple[float, float, float],
    syr: tuple[float, float, float],
    shift_step: float,
) -> tuple[np.ndarray, float]:
    # Shift first (rotation/scale ranges move the corners by a pixel or two at this level), then the
    # rotation x scale grid at the best shift. Grid steps finer than ~half a level pixel buy nothing here.
    step = max(units[3] * 0.5, min(float(shift_step), units[3]))
    txs = _grid((lo[3], hi[3], step), 0)
    tys = _grid((lo[4], hi[4], step), 0)
    best, bx = -np.inf, x.copy()
    for tx in txs:
        for ty in tys:
            v = x.copy()
            v[3], v[4] = tx, ty
            m = f(v)
            if m > best:
                best, bx = m, v
    x = bx
    rots = np.radians(_grid(rot, math.degrees(units[0] * 0.5)))
    sxs = _grid(sxr, units[1] * 0.5)
    sys_ = _grid(syr, units[2] * 0.5)
    for r in rots:
        for a in sxs:
            for b in sys_:
                v = x.copy()
                v[0], v[1], v[2] = r, a, b
                m = f(v)
                if m > best:
                    best, bx = m, v
    return bx, best


def _refine(
    f: Callable[[np.ndarray], float],
    x: np.ndarray,
    fx: float,
    units: np.ndarray,
    h_start: float,
    h_min: float,
) -> tuple[np.ndarray, float]:
    """Coordinate ascent with a parabola through (-h, 0, +h) per parameter; h halves when steps get small."""
    h = h_start
    sweeps = 0
    while h >= h_min and sweeps < 40:
        sweeps += 1
        moved = 0.0
        for i in range(x.size):
            d = np.zeros_like(x)
            d[i] = units[i] * h
            fp, fm = f(x + d), f(x - d)
            cands = [(fx, 0.0), (fp, 1.0), (fm, -1.0)]
            curv = fp - 2 * fx + fm
            if curv < 0:
                t = float(np.clip((fm - fp) / (2 * curv), -2.0, 2.0))
                if abs(t) > 1e-3 and abs(abs(t) - 1) > 1e-3:
                    cands.append((f(x + t * d), t))
            fb, tb = max(cands)
            if tb != 0.0 and fb > fx:
                x = x + tb * d
                fx = fb
                moved = max(moved, abs(tb))
        if moved < 0.5:
            h *= 0.5
    return x, fx


def warp(
    moving: np.ndarray, transform: Transform, out_shape: tuple[int, int], interp: str = "bilinear"
) -> np.ndarray:
    """Resample `moving` into the reference frame (edge pixels repeat outside it); keeps dtype and channels."""
    h, w = out_shape
    m = transform.matrix()
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    qx = (m[0, 0] * xs + m[0, 1] * ys + m[0, 2]).ravel()
    qy = (m[1, 0] * xs + m[1, 1] * ys + m[1, 2]).ravel()
    src = np.asarray(moving)
    chans = [src] if src.ndim == 2 else [src[..., c] for c in range(src.shape[2])]
    out = []
    for ch in chans:
        v, _ = _sample(ch.astype(np.float32), qx, qy, nearest=interp == "nearest")
        out.append(v.reshape(h, w))
    res = out[0] if src.ndim == 2 else np.stack(out, axis=-1)
    if np.issubdtype(src.dtype, np.integer):
        info = np.iinfo(src.dtype)
        res = np.clip(np.rint(res), info.min, info.max)
    return res.astype(src.dtype)


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


def main(argv: list[str]) -> int:
    """`align`: warp --moving onto --reference; writes the image and a JSON with the transform and MI."""
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
    args = ap.parse_args(argv)
    spec: dict[str, Any] = json.loads(Path(args.spec).read_text()) if args.spec else {}
    for k in ("reference", "moving", "output", "metadata"):
        if getattr(args, k):
            spec[k] = getattr(args, k)
    ap_params = dict(spec.get("align_params") or {})
    if args.interp:
        ap_params["interp"] = args.interp
    if args.min_mi is not None:
        ap_params["min_mi"] = args.min_mi
    missing = [k for k in ("reference", "moving", "output") if not spec.get(k)]
    if missing:
        print(f"ERROR: align needs {', '.join(missing)} (spec key or --flag)", file=sys.stderr)
        return 1
    try:
        params = AlignParams.from_dict(ap_params)
    except ValueError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 1
    from PIL import Image

    ref, mov = _load(spec["reference"]), _load(spec["moving"])
    res = align(ref, mov, params)
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
    for extra in args.apply_to:
        # masks/label maps: nearest, so no new label values appear at edges
        warped = warp(_load(extra), res.transform, ref.shape[:2], "nearest")
        Image.fromarray(warped).save(out.parent / f"{Path(extra).stem}_aligned{Path(extra).suffix}")
    Path(spec.get("metadata") or f"{out}.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(
        f"align: rot {res.transform.rot_deg:.4f} deg, scale ({res.transform.sx:.5f}, {res.transform.sy:.5f}), "
        f"shift ({res.transform.tx:.2f}, {res.transform.ty:.2f}) px, MI {res.mi:.4f}, {res.seconds:.2f} s"
    )
    if not res.passed:
        print(
            f"ERROR: MI {res.mi:.4f} below min_mi {params.min_mi}; the image does not match the reference",
            file=sys.stderr,
        )
        return 2
    return 0
