"""Image-edit scheduling: request workers that keep every request slot busy, post-processing workers, the run summary."""

from __future__ import annotations

import contextlib
import io
import os
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from PIL import Image

from dig_stages import align_torch, batch, edit_output
from dig_stages.edit_output import ItemResult, _Edited, _failed
from dig_stages.edit_transport import EditClient, EditError


def request_png(path: str) -> tuple[bytes, tuple[int, int]]:
    """The crop as request bytes: the file itself when it is an RGB PNG (nothing to re-encode), else its
    RGB conversion encoded at zlib level 1 (a level-6 encode of a 512² crop cost ~0.1 s of the pod's core)."""
    data = Path(path).read_bytes()
    with Image.open(io.BytesIO(data)) as im:  # reads the header only
        if im.format == "PNG" and im.mode == "RGB":
            return data, im.size
        rgb = im.convert("RGB")
    buf = io.BytesIO()
    rgb.save(buf, format="PNG", compress_level=1)
    return buf.getvalue(), rgb.size


class _Pipeline:
    """`concurrency` request workers keep every request slot busy: each prepares its next body (the file's
    bytes) and decodes its answer outside the slot, then hands the crop to the post-processing workers
    (alignment and writes), so CPU work never idles a slot. The hand-off queue is bounded: when alignment
    falls behind, requests wait instead of piling decoded images up in memory."""

    def __init__(self, client: EditClient, entries: list[batch.Entry]):
        self.client = client
        self.todo: queue.SimpleQueue[batch.Entry] = queue.SimpleQueue()
        for e in entries:
            self.todo.put(e)
        self.n = len(entries)
        self.ready: queue.Queue[_Edited | None] = queue.Queue(maxsize=2 * client.cfg.concurrency)
        self.done: queue.SimpleQueue[ItemResult | BaseException] = queue.SimpleQueue()

    def _guard(self, work: Callable[[], None]) -> None:
        try:
            work()
        except BaseException as exc:  # noqa: BLE001 - a bug in a worker must stop the run, not hang it
            self.done.put(exc)

    def _requests(self) -> None:
        while True:
            try:
                e = self.todo.get_nowait()
            except queue.Empty:
                return
            t0 = time.perf_counter()
            try:
                png, size = request_png(e.input)
                edited, attempts = self.client.edit(png, size, Path(e.input).name, e.key)
            except (EditError, OSError, ValueError) as exc:
                self.done.put(_failed(e, self.client, t0, exc))
                continue
            self.ready.put(_Edited(e, png, edited, attempts, t0))

    def _posts(self) -> None:
        # asked here, not before the requests start: the first call imports torch (a second or more)
        gpu = self.client.cfg.align and align_torch.available()
        while True:
            first = self.ready.get()
            if first is None:
                return
            items = [first]
            while gpu and len(items) < align_torch.MAX_BATCH:  # whatever has arrived: one GPU batch
                try:
                    nxt = self.ready.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self.ready.put(None)
                    break
                items.append(nxt)
            for r in edit_output.finish(items, self.client):
                self.done.put(r)

    def run(self) -> Iterator[ItemResult]:
        """Yields each crop's result as it finishes; re-raises a worker's unexpected exception."""
        n_post = max(1, len(os.sched_getaffinity(0)))  # one post-processing worker per usable core (pod: 1)
        workers = [self._requests] * min(self.client.cfg.concurrency, self.n) + [self._posts] * n_post
        threads = [threading.Thread(target=self._guard, args=(w,), daemon=True) for w in workers]
        for t in threads:
            t.start()
        try:
            for _ in range(self.n):
                r = self.done.get()
                if isinstance(r, BaseException):
                    raise r
                yield r
        finally:
            for _ in range(n_post):  # after a worker's bug the queue may be full: never block on it
                with contextlib.suppress(queue.Full):
                    self.ready.put_nowait(None)


def run_batch(
    entries: list[batch.Entry], client: EditClient, log: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """Process entries with bounded concurrency; returns the summary (counts, failures, timing)."""
    log = log or (lambda s: print(s, file=sys.stderr))
    t0 = time.perf_counter()
    todo = [e for e in entries if not os.path.exists(e.output)]
    results = [ItemResult(e.key, "skipped") for e in entries if os.path.exists(e.output)]
    for r in _Pipeline(client, todo).run():
        results.append(r)
        if r.status == "failed":
            log(f"image-edit: FAILED {r.key}: {r.error}")
        else:
            extra = f", MI {r.mi:.3f}" if r.mi is not None else ""
            log(f"image-edit: done {r.key} ({r.attempts} attempt(s), {r.seconds:.2f} s{extra})")
    counts = {s: sum(r.status == s for r in results) for s in ("done", "skipped", "failed")}
    return {
        "total": len(entries),
        **counts,
        "retries": client.retries,
        "seconds": round(time.perf_counter() - t0, 3),
        "failed_items": sorted(r.key for r in results if r.status == "failed"),
    }
