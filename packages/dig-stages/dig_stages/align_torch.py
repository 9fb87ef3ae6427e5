"""Optional torch (CUDA) path of dig_stages.align: many crops registered as one batch; numpy without CUDA."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from dig_stages import align

torch: Any = None  # imported by the first available() call: optional, and a second or more of start-up
_IMPORT = threading.Lock()
_tried = False

MAX_BATCH = 512  # crops per GPU batch: 1,007 crops/s at 512² vs 867 at 256 (H200); ~6 GB at 512² crops
GPU_COARSE_MIN_DIM = (
    128  # auto pyramid: the top level keeps at least this many px (CPU: align.COARSE_MIN_DIM)
)
BOARD_SAMPLES = 1 << 18  # samples per level for one large image (a board): the GPU has room for more
FIX = 1 << 20  # fixed-point unit of the bin weights: integer histograms sum exactly, in any order
ENT = float(1 << 40)  # fixed-point unit of the entropy terms, summed as integers for the same reason


def available() -> bool:
    """True when torch is importable and sees a CUDA device.

    The first call imports torch (pods without it use the numpy path): the image-edit stage asks from a
    worker thread while its first requests are in flight, so the import does not delay them.
    """
    global torch, _tried
    with _IMPORT:
        if not _tried:
            _tried = True
            try:
                import torch as _torch
            except ImportError:  # pragma: no cover - depends on the machine
                _torch = None
            torch = _torch
    return torch is not None and torch.cuda.is_available()


def _entropy_terms(j: Any) -> Any:
    """sum p log p of the joint (R, n, n) minus those of its two marginals, per row, in one pass.

    p log p is summed as fixed-point integers: the sum is exact, so no reduction order (which depends on the
    batch's shape on a GPU) can change a crop's value. Marginals come from exact integer sums of `j`.
    """
    r, n = j.shape[0], j.shape[1]
    tot = j.sum(dim=(1, 2)).clamp_min(1).double()[:, None]
    parts = torch.cat([j.reshape(r, -1), j.sum(2), j.sum(1)], 1).double() / tot
    v = torch.round(torch.special.xlogy(parts, parts) * ENT).long()
    v[:, n * n :] *= -1  # minus the marginal terms
    return v.sum(dim=1).double() / ENT


class _TorchLevel:
    """One pyramid level of B crops: per-crop samples (pre-binned) and moving images, on the GPU.

    `mi_batch` takes R = k * B level-0 matrices; row r belongs to crop r % B (the layout of align.search).
    """

    def __init__(
        self,
        fixed: Any,
        moving: Any,
        scale: float,
        bins: int,
        samples: int,
        margin: float = 0.0,
        everywhere: bool = False,
        smooth: bool = True,
    ):
        self.scale, self.bins, self.smooth, self.evals, self.calls = scale, bins, smooth, 0, 0
        dev = fixed.device
        b, h, w = fixed.shape
        self.b = b
        self.shape = moving.shape[1:]
        mx = min(int(math.ceil(margin / scale)) + 1, (w - 1) // 4)
        my = min(int(math.ceil(margin / scale)) + 1, (h - 1) // 4)
        self.need_inside = margin / scale + 1 > min(mx, my)
        if everywhere:
            mx = my = 0
            self.need_inside = True
        iw, ih = w - 2 * mx, h - 2 * my
        n = iw * ih
        if n <= samples or everywhere:
            step = max(1.0, math.sqrt(n / samples))
            gx = torch.unique((torch.arange(0, iw, step, device=dev, dtype=torch.float64)).long())
            gy = torch.unique((torch.arange(0, ih, step, device=dev, dtype=torch.float64)).long())
            idx = (gy[:, None] * iw + gx[None, :]).reshape(1, -1).expand(b, -1)
        else:
            # as align._Level: half the samples on the strongest reference gradients, half on an even grid
            inner = fixed[:, my : my + ih, mx : mx + iw]
            gm = torch.zeros_like(inner)
            # central differences: a pixel's selection never depends on its own value, so sensor noise cannot
            # bias the selected values (forward differences shifted an 8192 px board by ~0.09 px per axis)
            gm[:, :, 1:-1] += (inner[:, :, 2:] - inner[:, :, :-2]).abs()
            gm[:, 1:-1, :] += (inner[:, 2:, :] - inner[:, :-2, :]).abs()
            k = samples // 2
            top = torch.topk(gm.reshape(b, -1), k, dim=1, sorted=False).indices
            gstep = max(1, int(math.sqrt(n / max(1, samples - k))))
            grid = (
                torch.arange(0, ih, gstep, device=dev)[:, None] * iw + torch.arange(0, iw, gstep, device=dev)
            ).reshape(1, -1)
            idx = torch.sort(torch.cat([top, grid.expand(b, -1)], 1), dim=1).values
        ys, xs = idx // iw + my, idx % iw + mx
        self.xs, self.ys = xs.float(), ys.float()  # (B, N)
        fv = torch.gather(fixed.reshape(b, -1), 1, ys * w + xs)
        self.fbin = torch.clamp((fv * bins).long(), max=bins - 1) * bins
        hm, wm = self.shape
        flat = (moving * (bins - 1)).reshape(b, -1)
        self.mflat = torch.cat([flat, flat.new_zeros(b, wm + 2)], 1).reshape(-1)  # padded per crop
        self.stride = hm * wm + wm + 2
        self.offsets = (torch.arange(b, device=dev) * self.stride)[None, :, None]

    def joints(self, lm: np.ndarray) -> Any:
        """Integer joint histograms (R, bins, bins) for R level-pixel matrices."""
        dev = self.xs.device
        r = lm.shape[0]
        g = r // self.b  # rows are (g, crop): broadcast the per-crop tensors instead of gathering them
        m = torch.from_numpy(lm.astype(np.float32)).to(dev).reshape(g, self.b, 2, 3)
        xs, ys = self.xs[None], self.ys[None]
        qx = m[..., 0, 0, None] * xs + m[..., 0, 1, None] * ys + m[..., 0, 2, None]
        qy = m[..., 1, 0, None] * xs + m[..., 1, 1, None] * ys + m[..., 1, 2, None]
        h, w = self.shape
        ins = None
        if self.need_inside:
            ins = ((qx >= 0) & (qx <= w - 1) & (qy >= 0) & (qy <= h - 1)).long()
            qx, qy = qx.clamp(0, w - 1.001), qy.clamp(0, h - 1.001)
        xi, yi = qx.long(), qy.long()
        fx, fy = qx - xi, qy - yi
        i = yi * w + xi + self.offsets
        f = self.mflat
        top = f[i] + fx * (f[i + 1] - f[i])
        bot = f[i + w] + fx * (f[i + w + 1] - f[i + w])
        u = top + fy * (bot - top)
        j0 = torch.clamp(u.long(), max=self.bins - 2)
        wt = torch.round((u - j0) * FIX).long()
        one = torch.full_like(wt, FIX)
        if ins is not None:
            wt, one = wt * ins, one * ins
        nb = self.bins * self.bins
        k = (j0 + self.fbin[None] + (torch.arange(r, device=dev) * nb).reshape(g, self.b, 1)).reshape(-1)
        upper = torch.zeros(r * nb, dtype=torch.long, device=dev).scatter_add_(0, k, wt.reshape(-1))
        joint = torch.zeros(r * nb, dtype=torch.long, device=dev).scatter_add_(0, k, one.reshape(-1))
        joint -= upper
        joint[1:] += upper[:-1]
        self.evals += r
        return joint.reshape(r, self.bins, self.bins)

    def mi_joints(self, j: Any) -> Any:
        if self.smooth:  # align.smooth_joint, in integers
            a = j * 2
            a[:, 1:] += j[:, :-1]
            a[:, :-1] += j[:, 1:]
            s = a * 2
            s[:, :, 1:] += a[:, :, :-1]
            s[:, :, :-1] += a[:, :, 1:]
            j = s
        return _entropy_terms(j)

    def mi_batch(self, mats: np.ndarray) -> np.ndarray:
        self.calls += 1
        return self.mi_joints(self.joints(align.level_matrices(mats, self.scale))).cpu().numpy()

    def mi_nmi(self, mats: np.ndarray) -> list[tuple[float, float]]:
        """(MI, NMI) per row, unsmoothed: the gate's value."""
        j = self.joints(align.level_matrices(mats, self.scale)).cpu().numpy()
        return [align.mutual_information(x.astype(np.float64)) for x in j]


def _gray(x: Any) -> Any:
    if x.ndim == 4:
        if x.shape[3] >= 3:
            x = x[..., :3].float()
            return x[..., 0] * 0.299 + x[..., 1] * 0.587 + x[..., 2] * 0.114
        x = x[..., 0]
    return x.float()


def _normalise(g: Any) -> Any:
    b, h, w = g.shape
    # align._normalise's percentiles (numpy's linear method) from a per-crop sort
    sub = torch.sort(g[:, :: max(1, h // 256), :: max(1, w // 256)].reshape(b, -1).double(), dim=1).values
    n = sub.shape[1]

    def pct(q: float) -> Any:
        pos = q * (n - 1)
        i = int(math.floor(pos))
        j = min(i + 1, n - 1)
        return sub[:, i] + (pos - i) * (sub[:, j] - sub[:, i])

    lo, hi = pct(0.001).float(), pct(0.999).float()
    hi = torch.where(hi <= lo, lo + 1.0, hi)
    return ((g - lo[:, None, None]) / (hi - lo)[:, None, None]).clamp(0.0, 1.0)


def _down2(g: Any) -> Any:
    h, w = g.shape[1] // 2 * 2, g.shape[2] // 2 * 2
    g = g[:, :h, :w]
    return 0.25 * (g[:, 0::2, 0::2] + g[:, 1::2, 0::2] + g[:, 0::2, 1::2] + g[:, 1::2, 1::2])


def _blur3(g: Any) -> Any:
    p = torch.cat([g[:, :1], g, g[:, -1:]], 1)
    a = 0.25 * p[:, :-2] + 0.5 * p[:, 1:-1] + 0.25 * p[:, 2:]
    p = torch.cat([a[:, :, :1], a, a[:, :, -1:]], 2)
    return 0.25 * p[:, :, :-2] + 0.5 * p[:, :, 1:-1] + 0.25 * p[:, :, 2:]


def _warp(src: Any, mats: np.ndarray, out_shape: tuple[int, int], interp: str, dtype: np.dtype) -> np.ndarray:
    """Batched align.warp: src (B, H, W, C) on the GPU, one level-0 matrix per crop."""
    b, sh, sw, c = src.shape
    h, w = out_shape
    dev = src.device
    # float32 coordinates: ~1e-3 px at 8192 px, and half the memory traffic of float64
    m = torch.from_numpy(mats).to(dev).float()
    ys = torch.arange(h, device=dev, dtype=torch.float32)[:, None]
    xs = torch.arange(w, device=dev, dtype=torch.float32)[None, :]
    qx = (m[:, 0, 0, None, None] * xs + m[:, 0, 1, None, None] * ys + m[:, 0, 2, None, None]).reshape(b, -1)
    qy = (m[:, 1, 0, None, None] * xs + m[:, 1, 1, None, None] * ys + m[:, 1, 2, None, None]).reshape(b, -1)
    flat = src.reshape(b * sh * sw, c).float()
    off = (torch.arange(b, device=dev) * sh * sw)[:, None]
    if interp == "nearest" or sw == 1 or sh == 1:
        xi = qx.round().clamp(0, sw - 1).long()
        yi = qy.round().clamp(0, sh - 1).long()
        out = flat[(yi * sw + xi + off).reshape(-1)]
    else:
        qx, qy = qx.clamp(0, sw - 1.001), qy.clamp(0, sh - 1.001)
        xi, yi = qx.long(), qy.long()
        fx = (qx - xi).float().reshape(-1, 1)
        fy = (qy - yi).float().reshape(-1, 1)
        i = (yi * sw + xi + off).reshape(-1)
        top = flat[i] + fx * (flat[i + 1] - flat[i])
        bot = flat[i + sw] + fx * (flat[i + sw + 1] - flat[i + sw])
        out = top + fy * (bot - top)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        out = out.round().clamp(info.min, info.max)
    # cast on the GPU: the copy back is then the final array, at its final size
    return _to_host(out.reshape(b, h, w, c).to(torch.from_numpy(np.zeros(1, dtype)).dtype))


HOST_COPY = "staged"  # "staged" (below) or "direct" (one pageable copy); bench/align_gpu.py compares them
STAGE_BYTES = 1 << 24
_STAGING: list[Any] = []  # two pinned buffers of STAGE_BYTES, allocated once per process


def _to_host(t: Any) -> np.ndarray:
    """A device tensor as a new numpy array.

    A pageable copy into fresh host memory ran at ~1.2 GB/s on an H200 host (256 MB: 0.18 s); here chunks
    go through two reused pinned buffers, so the DMA of one chunk overlaps the host copy of the previous.
    """
    t = t.contiguous()
    out = np.empty(tuple(t.shape), dtype=torch.empty(0, dtype=t.dtype).numpy().dtype)
    dst, src = torch.from_numpy(out).reshape(-1), t.reshape(-1)
    if HOST_COPY == "direct" or src.numel() * t.element_size() <= STAGE_BYTES:
        dst.copy_(src)
        return out
    if not _STAGING:
        _STAGING.extend(torch.empty(STAGE_BYTES, dtype=torch.uint8, pin_memory=True) for _ in range(2))
    chunk = STAGE_BYTES // t.element_size()
    bufs = [b.view(t.dtype) for b in _STAGING]
    done = [torch.cuda.Event(), torch.cuda.Event()]
    pending: tuple[int, int, int] | None = None
    for i, s in enumerate(range(0, src.numel(), chunk)):
        e = min(src.numel(), s + chunk)
        bufs[i % 2][: e - s].copy_(src[s:e], non_blocking=True)
        done[i % 2].record()
        if pending is not None:
            _drain(dst, bufs, done, pending)
        pending = (i % 2, s, e)
    if pending is not None:
        _drain(dst, bufs, done, pending)
    return out


def _drain(dst: Any, bufs: list[Any], done: list[Any], pending: tuple[int, int, int]) -> None:
    k, s, e = pending
    done[k].synchronize()
    dst[s:e].copy_(bufs[k][: e - s])


TIMINGS: dict[str, float] | None = None  # phase -> seconds, when a bench sets it to {}
_last = [0.0]


def _mark(phase: str) -> None:
    if TIMINGS is not None:
        torch.cuda.synchronize()
        now = time.perf_counter()
        if phase:  # "" starts the clock
            TIMINGS[phase] = TIMINGS.get(phase, 0.0) + now - _last[0]
        _last[0] = now


def _upload(arrays: Sequence[np.ndarray]) -> Any:
    # one host-to-device copy per crop into a preallocated batch: no host-side stack of the whole batch
    a0 = np.asarray(arrays[0])
    out = torch.empty((len(arrays), *a0.shape), dtype=torch.from_numpy(a0[:1].copy()).dtype, device="cuda")
    for i, a in enumerate(arrays):
        out[i].copy_(torch.from_numpy(np.ascontiguousarray(a)), non_blocking=False)
    return out


def _register_group(
    refs: Sequence[np.ndarray], movs: Sequence[np.ndarray], p: align.AlignParams, samples: int
) -> list[align.AlignResult]:
    """One batch of same-shaped crops: registration on the GPU, then the warp."""
    t0 = time.perf_counter()
    _mark("")
    ref_t, mov_raw = _upload(refs), _upload(movs)
    _mark("upload")
    fixed, mov = _normalise(_gray(ref_t)), _normalise(_gray(mov_raw))
    ref_shape, mov_shape = tuple(fixed.shape[1:]), tuple(mov.shape[1:])
    d = align.derive(p, ref_shape, mov_shape)
    resize = (1.0, 1.0)
    if not p.no_resize and mov_shape != ref_shape:
        resize = (mov_shape[1] / ref_shape[1], mov_shape[0] / ref_shape[0])
        mov = torch.nn.functional.interpolate(
            mov[:, None], size=ref_shape, mode="bilinear", align_corners=False
        )[:, 0]
    if not p.pyr_levels:  # auto: a larger top level than the CPU's; its evaluations cost the GPU nothing
        top = min(ref_shape) / GPU_COARSE_MIN_DIM
        d["pyr_levels"] = min(d["pyr_levels"], 1 + max(0, int(math.floor(math.log2(max(1.0, top))))))
    levels = d["pyr_levels"]
    fpyr, mpyr = [fixed], [mov]
    for _ in range(levels - 1):
        fpyr.append(_down2(fpyr[-1]))
        mpyr.append(_down2(mpyr[-1]))
    fpyr[0], mpyr[0] = _blur3(fpyr[0]), _blur3(mpyr[0])
    box = align.make_box(p, d, ref_shape, tuple(mov.shape[1:]))
    margin = box.margin()

    def level(lvl: int, fast: bool = False) -> _TorchLevel:
        bins = p.bins if lvl == 0 else min(p.bins, align.COARSE_BINS)
        n = samples if lvl == 0 and not fast else max(1, samples // align.COARSE_SAMPLE_DIV)
        return _TorchLevel(fpyr[lvl], mpyr[lvl], float(2**lvl), bins, n, margin=margin)

    _mark("prepare")
    xs, _, evals = align.search(box, p, d, level, batch=len(refs))
    _mark("search")
    xs = np.clip(xs, box.lo, box.hi)
    mats = box.matrices(xs)
    gate = _TorchLevel(
        fixed, mov, 1.0, p.bins, max(samples, align.GATE_SAMPLES), everywhere=True, smooth=False
    )
    minmi = gate.mi_nmi(mats)
    _mark("gate")
    # the warp samples the moving image as given (not resized): its own centre and the scale ratio
    cm = ((movs[0].shape[1] - 1) / 2, (movs[0].shape[0] - 1) / 2)
    ts = [
        align.Transform(
            math.degrees(x[0]),
            x[1] * resize[0],
            x[2] * resize[1],
            x[3] * resize[0],
            x[4] * resize[1],
            box.cf,
            cm,
        )
        for x in xs
    ]
    src = mov_raw if mov_raw.ndim == 4 else mov_raw[..., None]
    imgs = _warp(src, np.stack([t.matrix() for t in ts]), ref_shape, p.interp, movs[0].dtype)
    _mark("warp")
    dt = (time.perf_counter() - t0) / len(refs)
    out = []
    for k, t in enumerate(ts):
        mi, nmi = minmi[k]
        img = imgs[k] if movs[k].ndim == 3 else imgs[k][..., 0]
        passed = p.min_mi is None or (mi >= p.min_mi and math.isfinite(mi))
        out.append(align.AlignResult(img, t, mi, nmi, passed, dt, levels, evals + 1))
    return out


def align_batch(
    references: Sequence[np.ndarray],
    movings: Sequence[np.ndarray],
    params: align.AlignParams | dict[str, Any] | None = None,
    max_batch: int = MAX_BATCH,
    samples: int | None = None,
) -> list[align.AlignResult]:
    """align.align for many crops: same-shaped pairs registered together on the GPU (numpy without CUDA).

    A crop's result does not depend on which batch it ran in (per-crop steps; integer histograms).
    `seconds` of each result is its batch's wall time divided by the batch size.
    """
    p = params if isinstance(params, align.AlignParams) else align.AlignParams.from_dict(params)
    if not available():
        return [align.align(r, m, p) for r, m in zip(references, movings, strict=True)]
    groups: dict[tuple, list[int]] = {}
    for i, (r, m) in enumerate(zip(references, movings, strict=True)):
        key = (np.asarray(r).shape, np.asarray(r).dtype.str, np.asarray(m).shape, np.asarray(m).dtype.str)
        groups.setdefault(key, []).append(i)
    out: list[align.AlignResult | None] = [None] * len(references)
    for idx in groups.values():
        for s in range(0, len(idx), max_batch):
            chunk = idx[s : s + max_batch]
            res = _register_group(
                [np.asarray(references[i]) for i in chunk],
                [np.asarray(movings[i]) for i in chunk],
                p,
                samples or p.samples,
            )
            for i, r in zip(chunk, res, strict=True):
                out[i] = r
    return out  # type: ignore[return-value]


def align_gpu(
    reference: np.ndarray, moving: np.ndarray, params: align.AlignParams | dict[str, Any] | None = None
) -> align.AlignResult:
    """align.align on the GPU when CUDA is there (more samples for a large image); numpy otherwise."""
    p = params if isinstance(params, align.AlignParams) else align.AlignParams.from_dict(params)
    if not available():
        return align.align(reference, moving, p)
    big = np.asarray(reference).shape[0] * np.asarray(reference).shape[1] > 4 * BOARD_SAMPLES
    samples = max(p.samples, BOARD_SAMPLES) if big and p.samples == align.DEFAULT_SAMPLES else p.samples
    return align_batch([reference], [moving], p, samples=samples)[0]
