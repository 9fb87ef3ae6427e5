"""Image-edit output: alignment of the edited crops onto their inputs, then atomic caption, metadata and image writes."""

from __future__ import annotations

import io
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from dig_stages import align, align_torch, batch
from dig_stages.edit_transport import EditClient, EditError


def write_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    """Write to a temp file in the same folder, then os.replace: readers (and resume) see all or nothing.

    No fsync: it cost ~5% throughput in bench/edit_client.py, and a node crash loses the pod's disk anyway.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _encode(arr: np.ndarray, suffix: str, quality: int) -> bytes:
    buf = io.BytesIO()
    im = Image.fromarray(arr)
    if suffix.lower() in (".jpg", ".jpeg"):
        im.convert("RGB").save(buf, format="JPEG", quality=quality)
    else:
        im.save(buf, format="PNG")
    return buf.getvalue()


@dataclass
class ItemResult:
    key: str
    status: str  # done | skipped | failed
    attempts: int = 0
    seconds: float = 0.0
    error: str = ""
    mi: float | None = None


@dataclass
class _Edited:
    """A crop whose request succeeded, waiting for alignment and writes."""

    entry: batch.Entry
    src_png: bytes
    edited: Image.Image
    attempts: int
    t0: float


def _failed(entry: batch.Entry, client: EditClient, t0: float, exc: Exception) -> ItemResult:
    return ItemResult(entry.key, "failed", 0, time.perf_counter() - t0, client._scrub(str(exc)))


def finish(items: list[_Edited], client: EditClient) -> list[ItemResult]:
    """Align the edited crops onto their inputs (one GPU batch when torch sees CUDA, else numpy one by one),
    then write caption + metadata, then the image (the done-marker)."""
    cfg = client.cfg
    out: list[ItemResult] = []
    srcs, arrs, ok = [], [], []
    for it in items:
        try:
            if cfg.align:
                srcs.append(np.asarray(Image.open(io.BytesIO(it.src_png)).convert("RGB")))
            arrs.append(np.asarray(it.edited.convert("RGB")))
            ok.append(it)
        except (OSError, ValueError) as exc:
            out.append(_failed(it.entry, client, it.t0, exc))
    items = ok
    params = align.AlignParams.from_dict(cfg.align_params)
    gpu = cfg.align and align_torch.available()
    try:
        aligned = align_torch.align_batch(srcs, arrs, params) if cfg.align else [None] * len(items)
    except ValueError as exc:
        return out + [_failed(it.entry, client, it.t0, exc) for it in items]
    for it, arr, res in zip(items, arrs, aligned, strict=True):
        meta: dict[str, Any] = {
            "input": it.entry.input,
            "output": it.entry.output,
            "model": cfg.model,
            "route": cfg.route,
            "generation": cfg.generation,
            "attempts": it.attempts,
            "edited_size": list(it.edited.size),
        }
        try:
            if res is not None:
                meta["alignment"] = res.metadata() | {
                    "interp": params.interp,
                    "path": "torch-cuda" if gpu else "numpy-cpu",
                }
                if not res.passed:
                    raise EditError(f"alignment MI {res.mi:.4f} below min_mi {params.min_mi}")
                arr = res.image
            meta["seconds"] = round(time.perf_counter() - it.t0, 3)
            write_atomic(it.entry.caption, cfg.prompt.encode())
            write_atomic(it.entry.metadata, (json.dumps(meta, indent=1) + "\n").encode())
            write_atomic(it.entry.output, _encode(arr, Path(it.entry.output).suffix, cfg.jpeg_quality))
        except (EditError, OSError, ValueError) as exc:
            out.append(_failed(it.entry, client, it.t0, exc))
            continue
        mi = res.mi if res is not None else None
        out.append(ItemResult(it.entry.key, "done", it.attempts, time.perf_counter() - it.t0, mi=mi))
    return out
