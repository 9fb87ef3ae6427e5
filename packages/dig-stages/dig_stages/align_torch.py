"""Optional torch (CUDA) path of dig_stages.align: many crops registered as one batch; numpy without CUDA."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from dig_stages import align
from dig_stages.align_level import LevelSampling
from dig_stages.align_torch_level import _blur3, _down2, _gray, _normalise, _TorchLevel, load_torch

torch: Any = None  # set by the first available() call (align_torch_level.load_torch): optional

MAX_BATCH = 512  # crops per GPU batch: 1,007 crops/s at 512² vs 867 at 256 (H200); ~6 GB at 512² crops
GPU_COARSE_MIN_DIM = (
    128  # auto pyramid: the top level keeps at least this many px (CPU: align.COARSE_MIN_DIM)
)
BOARD_SAMPLES = 1 << 18  # samples per level for one large image (a board): the GPU has room for more


def available() -> bool:
    """True when torch is importable and sees a CUDA device.

    The first call imports torch (pods without it use the numpy path): the image-edit stage asks from a
    worker thread while its first requests are in flight, so the import does not delay them.
    """
    global torch
    torch = load_torch()
    return torch is not None and torch.cuda.is_available()


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
        a = np.asarray(a)
        if not (a.flags.writeable and a.flags.c_contiguous):
            # torch wraps only writable memory; decoded images (np.asarray of a PIL image) are read-only
            a = np.array(a, order="C")
        out[i].copy_(torch.from_numpy(a), non_blocking=False)
    return out


@dataclass
class _Group:
    """A batch's normalised images, their pyramids and search box, on the GPU."""

    fixed: Any
    mov: Any
    fpyr: list[Any]
    mpyr: list[Any]
    d: dict[str, Any]
    box: align.Box
    resize: tuple[float, float]


def _prepare(ref_t: Any, mov_raw: Any, p: align.AlignParams) -> _Group:
    """Grey, normalised (resized when asked) images, their pyramids and the search box of one batch."""
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
    fpyr, mpyr = [fixed], [mov]
    for _ in range(d["pyr_levels"] - 1):
        fpyr.append(_down2(fpyr[-1]))
        mpyr.append(_down2(mpyr[-1]))
    fpyr[0], mpyr[0] = _blur3(fpyr[0]), _blur3(mpyr[0])
    box = align.make_box(p, d, ref_shape, tuple(mov.shape[1:]))
    return _Group(fixed, mov, fpyr, mpyr, d, box, resize)


def _transforms(xs: np.ndarray, g: _Group, mov_shape: tuple[int, ...]) -> list[align.Transform]:
    """The found parameters as transforms of the moving image as given (not resized): its own centre and
    the scale ratio."""
    r = g.resize
    cm = ((mov_shape[1] - 1) / 2, (mov_shape[0] - 1) / 2)
    return [
        align.Transform(math.degrees(x[0]), x[1] * r[0], x[2] * r[1], x[3] * r[0], x[4] * r[1], g.box.cf, cm)
        for x in xs
    ]


def _register_group(
    refs: Sequence[np.ndarray], movs: Sequence[np.ndarray], p: align.AlignParams, samples: int
) -> list[align.AlignResult]:
    """One batch of same-shaped crops: registration on the GPU, then the warp."""
    t0 = time.perf_counter()
    _mark("")
    ref_t, mov_raw = _upload(refs), _upload(movs)
    _mark("upload")
    g = _prepare(ref_t, mov_raw, p)
    margin = g.box.margin()

    def level(lvl: int, fast: bool = False) -> _TorchLevel:
        bins = p.bins if lvl == 0 else min(p.bins, align.COARSE_BINS)
        n = samples if lvl == 0 and not fast else max(1, samples // align.COARSE_SAMPLE_DIV)
        return _TorchLevel(g.fpyr[lvl], g.mpyr[lvl], float(2**lvl), LevelSampling(bins, n, margin=margin))

    _mark("prepare")
    xs, _, evals = align.search(g.box, p, g.d, level, batch=len(refs))
    _mark("search")
    xs = np.clip(xs, g.box.lo, g.box.hi)
    gate = LevelSampling(p.bins, max(samples, align.GATE_SAMPLES), everywhere=True)
    minmi = _TorchLevel(g.fixed, g.mov, 1.0, gate, smooth=False).mi_nmi(g.box.matrices(xs))
    _mark("gate")
    ts = _transforms(xs, g, movs[0].shape)
    src = mov_raw if mov_raw.ndim == 4 else mov_raw[..., None]
    ref_shape = tuple(g.fixed.shape[1:])
    imgs = _warp(src, np.stack([t.matrix() for t in ts]), ref_shape, p.interp, movs[0].dtype)
    _mark("warp")
    dt = (time.perf_counter() - t0) / len(refs)
    out = []
    for k, t in enumerate(ts):
        mi, nmi = minmi[k]
        img = imgs[k] if movs[k].ndim == 3 else imgs[k][..., 0]
        passed = p.min_mi is None or (mi >= p.min_mi and math.isfinite(mi))
        out.append(align.AlignResult(img, t, mi, nmi, passed, dt, g.d["pyr_levels"], evals + 1))
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
