"""Image-edit endpoint client: one request per ROI crop, bounded retries, atomic resumable writes, MI alignment."""

from __future__ import annotations

import argparse
import base64
import contextlib
import email.utils
import http.client
import io
import json
import os
import queue
import random
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from dig_stages import _common, align, align_torch, batch

REQUIRED_MODEL = "nvidia/Qwen-Image-Edit-NVPCB-OVSL2SL"
DEFAULT_ENDPOINT = "http://localhost:8000/v1"  # the cookbook placeholder; the compiler writes the knob value
# cookbooks.md §2 (captioning.llm.text and augmentation.parameters)
DEFAULT_PROMPT = (
    "Render this PCB component crop in the style of an NVPCB raked-solder-light photograph: dark reddish "
    "board with bright orange-red and blue specular highlights on the solder pads, photorealistic textures."
)
DEFAULT_GENERATION: dict[str, Any] = {"num_inference_steps": 30, "guidance_scale": 4.0, "seed": 0}
DEFAULT_ALIGN_PARAMS: dict[str, Any] = {
    "rot_range_deg": [-1.0, 1.0, 0.1],
    "shift_step": 2,
    "bins": 64,
    "interp": "bilinear",
    "no_resize": True,
}
ROUTES = ("images", "chat")

Option = _common.Option
# The one declaration of the cookbook block `data_processing.alignment` (align.AlignParams' keys and
# meanings): the pod checks it before any request, the compiler checks the cookbook against it.
ALIGNMENT_OPTIONS = {
    "rot_range_deg": Option("json", length=3, item="float"),  # [min, max, step] in degrees
    "shift_step": Option("float", minimum=0),
    "bins": Option("int", minimum=2),
    "interp": Option("str", choices=("bilinear", "nearest")),
    "no_resize": Option("bool"),
    "sx_range": Option("json", length=3, item="float"),
    "sy_range": Option("json", length=3, item="float"),
    "shift_range": Option("float", minimum=0),
    "pyr_levels": Option("int", minimum=1),
    "min_mi": Option("float"),
    "samples": Option("int", minimum=1),
    "seed": Option("int", minimum=0),
}
# The one declaration of the step's spec keys (docs/stage-contract.md, step image-edit).
OPTIONS = {
    "image-edit": _common.options(
        {
            "input_dir": Option("path", required=True),
            "output_dir": Option("path", required=True),
            "layout": Option("str", required=True, choices=batch.LAYOUTS),
            "endpoint": Option("str"),
            "model": Option("str", choices=(REQUIRED_MODEL,)),
            "prompt": Option("str"),
            "generation": Option("json"),
            "route": Option("str", choices=ROUTES),
            "output_format": Option("str"),
            "output_ext": Option("str"),
            "side_dir": Option("path"),
            "concurrency": Option("int", minimum=1),
            "timeout_s": Option("float", minimum=0),
            "max_retries": Option("int", minimum=0),
            "backoff_base_s": Option("float", minimum=0),
            "backoff_max_s": Option("float", minimum=0),
            "align": Option("bool"),
            "align_params": Option("json"),
            "jpeg_quality": Option("int", minimum=1, maximum=100),
        }
    )
}


def option_problems(spec: dict[str, Any]) -> list[str]:
    """What the pod refuses in an image-edit spec, including its `align_params` block (one line each)."""
    _opts, problems = _common.parse_options(OPTIONS["image-edit"], spec)
    block = spec.get("align_params")
    if isinstance(block, dict):
        decl = {k: v for k, v in ALIGNMENT_OPTIONS.items() if k in block}  # absent keys take align's defaults
        problems += [(f"align_params.{k}", *rest) for k, *rest in _common.parse_options(decl, block)[1]]
    elif block is not None:
        problems.append(("align_params", block, "must be a mapping", "the data_processing.alignment block"))
    return [f"option '{k}' {reason}, got {v!r} (allowed: {allowed})" for k, v, reason, allowed in problems]


class EditError(RuntimeError):
    """A request that failed; `retryable` is true for 429, 5xx, transport errors and unusable 200 bodies."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.retryable = retryable
        self.retry_after = retry_after


class IdentityError(RuntimeError):
    """The endpoint does not serve the one acceptable model (or the config asks for another)."""


@dataclass
class ClientConfig:
    """Everything one run needs; `from_spec` reads the task spec keys of docs/stage-contract.md."""

    endpoint: str = DEFAULT_ENDPOINT
    model: str = REQUIRED_MODEL
    prompt: str = DEFAULT_PROMPT
    generation: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_GENERATION))
    route: str = "images"
    output_format: str = "png"  # what we ask the server for: lossless, we re-encode after alignment
    concurrency: int = 4
    timeout_s: float = 300.0
    max_retries: int = 3
    backoff_base_s: float = 1.0
    backoff_max_s: float = 60.0
    align: bool = True
    align_params: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_ALIGN_PARAMS))
    jpeg_quality: int = 95
    token: str | None = field(default=None, repr=False)

    @classmethod
    def from_spec(cls, spec: dict[str, Any], env: dict[str, str] | None = None) -> ClientConfig:
        """Spec values, then env `IMAGE_EDIT_ENDPOINT` / `IMAGE_EDIT_MODEL` when non-empty, `HF_TOKEN` as bearer."""
        env = dict(os.environ if env is None else env)
        cfg = cls()
        for k in (
            "endpoint",
            "model",
            "prompt",
            "route",
            "output_format",
            "concurrency",
            "timeout_s",
            "max_retries",
            "backoff_base_s",
            "backoff_max_s",
            "align",
            "jpeg_quality",
        ):
            if spec.get(k) is not None:
                setattr(cfg, k, spec[k])
        if spec.get("generation") is not None:
            cfg.generation = dict(spec["generation"])
        if spec.get("align_params") is not None:
            cfg.align_params = dict(spec["align_params"])
        # upstream build_batch_config.py: stripped env values win only when non-empty
        if env.get("IMAGE_EDIT_ENDPOINT", "").strip():
            cfg.endpoint = env["IMAGE_EDIT_ENDPOINT"].strip()
        if env.get("IMAGE_EDIT_MODEL", "").strip():
            cfg.model = env["IMAGE_EDIT_MODEL"].strip()
        cfg.token = env.get("HF_TOKEN", "").strip() or None
        cfg.concurrency = max(1, int(cfg.concurrency))
        cfg.max_retries = max(0, int(cfg.max_retries))
        cfg.timeout_s = float(cfg.timeout_s)
        if cfg.route not in ROUTES:
            raise ValueError(f"route '{cfg.route}' is unknown; use one of {', '.join(ROUTES)}")
        return cfg


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:  # HTTP-date form
        when = email.utils.parsedate_to_datetime(value)
        return max(0.0, when.timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _multipart(fields: dict[str, str], files: list[tuple[str, str, bytes, str]]) -> tuple[bytes, str]:
    boundary = "dig-" + uuid.uuid4().hex
    buf = io.BytesIO()
    for name, value in fields.items():
        buf.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode())
        buf.write(str(value).encode() + b"\r\n")
    for name, filename, data, ctype in files:
        buf.write(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
            f"Content-Type: {ctype}\r\n\r\n".encode()
        )
        buf.write(data + b"\r\n")
    buf.write(f"--{boundary}--\r\n".encode())
    return buf.getvalue(), f"multipart/form-data; boundary={boundary}"


def _decode_image(b64: str) -> Image.Image:
    if b64.startswith("data:"):
        b64 = b64.split(",", 1)[1] if "," in b64 else ""
    try:
        raw = base64.b64decode(b64, validate=False)
        im = Image.open(io.BytesIO(raw))
        im.load()
    except Exception as exc:  # noqa: BLE001 - any decoding failure means the body is unusable
        raise EditError(f"response image does not decode ({type(exc).__name__})", retryable=True) from exc
    return im


class EditClient:
    """HTTP client for the vLLM-Omni image-edit routes (endpoint_and_sizing.md §1.2b), stdlib only."""

    def __init__(
        self, cfg: ClientConfig, sleep: Callable[[float], None] = time.sleep, seed: int | None = None
    ):
        self.cfg = cfg
        self.base = cfg.endpoint.rstrip("/")
        self._sleep = sleep
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self.retries = 0  # total retry waits taken, for the summary
        # Bounds requests in flight (run_batch's request workers, the identity probe, retries alike).
        self.slots = threading.BoundedSemaphore(cfg.concurrency)

    def _scrub(self, text: str) -> str:
        return text.replace(self.cfg.token, "***") if self.cfg.token else text

    def _request(self, method: str, path: str, body: bytes | None = None, ctype: str | None = None) -> bytes:
        headers = {"Accept": "application/json", "User-Agent": "dig-stages-edit-client"}
        if ctype:
            headers["Content-Type"] = ctype
        if self.cfg.token:
            headers["Authorization"] = f"Bearer {self.cfg.token}"
        req = urllib.request.Request(self.base + path, data=body, method=method, headers=headers)
        try:
            with self.slots, urllib.request.urlopen(req, timeout=self.cfg.timeout_s) as resp:
                return resp.read()
        except urllib.error.HTTPError as exc:
            code = exc.code
            try:
                detail = exc.read(300).decode("utf-8", "replace")
            except Exception:  # noqa: BLE001 - the status is what matters
                detail = ""
            retryable = code == 429 or code >= 500
            raise EditError(
                self._scrub(f"{method} {path}: HTTP {code} {detail.strip()[:200]}"),
                status=code,
                retryable=retryable,
                retry_after=_retry_after(exc.headers.get("Retry-After") if exc.headers else None),
            ) from None
        except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
            # timeouts and resets: the server may be busy or restarting, so these are retried too
            reason = getattr(exc, "reason", exc)
            raise EditError(
                self._scrub(f"{method} {path}: {type(exc).__name__}: {reason}"), retryable=True
            ) from None

    def with_retries(self, what: Callable[[], Any], label: str) -> tuple[Any, int]:
        """Run `what` with up to max_retries retries on retryable errors; returns (result, attempts)."""
        attempt = 0
        while True:
            attempt += 1
            try:
                return what(), attempt
            except EditError as exc:
                if not exc.retryable or attempt > self.cfg.max_retries:
                    raise
                back = min(self.cfg.backoff_max_s, self.cfg.backoff_base_s * 2 ** (attempt - 1))
                with self._lock:
                    jitter = self._rng.uniform(0.5, 1.0)
                    self.retries += 1
                delay = back * jitter
                if exc.retry_after is not None:
                    delay = min(self.cfg.backoff_max_s, max(delay, exc.retry_after))
                print(
                    f"image-edit: {label}: {exc}; retry {attempt}/{self.cfg.max_retries} in {delay:.2f} s",
                    file=sys.stderr,
                )
                self._sleep(delay)

    def check_identity(self) -> list[str]:
        """`GET <base>/models` must list the one acceptable model; any other configured model is refused."""
        if self.cfg.model != REQUIRED_MODEL:
            raise IdentityError(
                f"ERROR: image-edit model '{self.cfg.model}' is not acceptable; only {REQUIRED_MODEL} is "
                "(downstream AnomalyGen was trained on its distribution). Unset IMAGE_EDIT_MODEL / fix `model`."
            )

        def probe() -> list[str]:
            body = self._request("GET", "/models")
            try:
                ids = [str(m.get("id")) for m in json.loads(body).get("data", [])]
            except (ValueError, AttributeError, TypeError) as exc:
                raise EditError(f"GET /models: body is not a model list ({exc})", retryable=True) from None
            return ids

        ids, _ = self.with_retries(probe, "identity")
        if REQUIRED_MODEL not in ids:
            raise IdentityError(
                f"ERROR: endpoint {self.base} serves {ids or 'no models'}, not {REQUIRED_MODEL}; point "
                "IMAGE_EDIT_ENDPOINT / `endpoint` at the NVPCB OVSL2SL deployment (a generic model is never used)"
            )
        return ids

    def edit_once(self, png: bytes, size: tuple[int, int], filename: str = "input.png") -> Image.Image:
        """One request on the configured route with the crop's PNG bytes; raises EditError (retryable or not)."""
        w, h = size
        gen = self.cfg.generation
        if self.cfg.route == "images":
            fields = {
                "model": self.cfg.model,
                "prompt": self.cfg.prompt,
                "size": f"{w}x{h}",
                "output_format": self.cfg.output_format,
                "n": "1",
            }
            fields.update({k: str(v) for k, v in gen.items()})
            body, ctype = _multipart(fields, [("image", filename, png, "image/png")])
            raw = self._request("POST", "/images/edits", body, ctype)
            try:
                b64 = json.loads(raw)["data"][0]["b64_json"]
                if not isinstance(b64, str) or not b64:
                    raise TypeError("empty b64_json")
            except (ValueError, KeyError, IndexError, TypeError) as exc:
                raise EditError(
                    f"POST /images/edits: malformed body ({type(exc).__name__})", retryable=True
                ) from None
            return _decode_image(b64)
        url = "data:image/png;base64," + base64.b64encode(png).decode()
        payload = {
            "model": self.cfg.model,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": self.cfg.prompt},
                        {"type": "image_url", "image_url": {"url": url}},
                    ],
                }
            ],
            "height": h,
            "width": w,
            **gen,
        }
        raw = self._request("POST", "/chat/completions", json.dumps(payload).encode(), "application/json")
        try:
            content = json.loads(raw)["choices"][0]["message"]["content"]
            if isinstance(content, list):
                content = next(p["image_url"]["url"] for p in content if p.get("type") == "image_url")
            if not isinstance(content, str) or not content.startswith("data:image"):
                raise TypeError("no image data URL in the message")
        except (ValueError, KeyError, IndexError, TypeError, StopIteration) as exc:
            raise EditError(
                f"POST /chat/completions: malformed body ({type(exc).__name__})", retryable=True
            ) from None
        return _decode_image(content)

    def edit(
        self, png: bytes, size: tuple[int, int], filename: str = "input.png", label: str = ""
    ) -> tuple[Image.Image, int]:
        return self.with_retries(lambda: self.edit_once(png, size, filename), label or filename)


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
            for r in finish(items, self.client):
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


def main(argv: list[str]) -> int:
    """`image-edit`: expand the ROI crops, check the endpoint identity, edit + align every crop."""
    ap = argparse.ArgumentParser(prog="dig_stages image-edit")
    ap.add_argument("--spec", help="JSON task spec (docs/stage-contract.md, step image-edit)")
    ap.add_argument("--input-dir")
    ap.add_argument("--output-dir")
    ap.add_argument("--layout", choices=batch.LAYOUTS)
    ap.add_argument("--endpoint")
    ap.add_argument("--model")
    ap.add_argument("--route", choices=ROUTES)
    ap.add_argument("--output-ext")
    ap.add_argument("--concurrency", type=int)
    ap.add_argument("--timeout-s", type=float)
    ap.add_argument("--max-retries", type=int)
    ap.add_argument("--side-dir", help="captions + metadata (upstream: /tmp, not uploaded)")
    ap.add_argument("--no-align", action="store_true")
    args = ap.parse_args(argv)
    spec: dict[str, Any] = json.loads(Path(args.spec).read_text()) if args.spec else {}
    for k, v in vars(args).items():
        if k not in ("spec", "no_align") and v is not None:
            spec[k] = v
    if args.no_align:
        spec["align"] = False
    missing = [k for k in ("input_dir", "output_dir", "layout") if not spec.get(k)]
    if missing:
        print(f"ERROR: image-edit needs {', '.join(missing)} (spec key or --flag)", file=sys.stderr)
        return 1
    problems = option_problems(spec)
    if problems:
        print("ERROR: " + "\n  ".join(problems), file=sys.stderr)
        return 1
    try:
        cfg = ClientConfig.from_spec(spec)
        align.AlignParams.from_dict(cfg.align_params)  # fail before any request on a bad block
        entries = batch.expand(
            spec["input_dir"],
            spec["output_dir"],
            spec["layout"],
            spec.get("output_ext") or ".jpg",
            spec.get("side_dir") or "/tmp",
        )
    except (ValueError, batch.BatchError) as exc:
        msg = str(exc)
        print(msg if msg.startswith("ERROR") else f"ERROR: {msg}", file=sys.stderr)
        return 1
    client = EditClient(cfg)
    print(
        f"image-edit: {len(entries)} crops, endpoint {client.base}, model {cfg.model}, route {cfg.route}, "
        f"concurrency {cfg.concurrency}, auth {'bearer' if cfg.token else 'none'}",
        file=sys.stderr,
    )
    try:
        client.check_identity()
    except (IdentityError, EditError) as exc:
        msg = str(exc)
        print(
            msg if msg.startswith("ERROR") else f"ERROR: endpoint identity check failed: {msg}",
            file=sys.stderr,
        )
        return 1
    summary = run_batch(entries, client)
    print("image-edit summary: " + json.dumps(summary), file=sys.stderr)
    if summary["failed"]:
        print(
            f"ERROR: {summary['failed']} of {summary['total']} crops failed after retries; rerun the task to "
            "resume (finished crops are skipped)",
            file=sys.stderr,
        )
        return 1
    if summary["done"] + summary["skipped"] == 0:
        print("ERROR: 0 image-edit images emitted", file=sys.stderr)
        return 1
    return 0
