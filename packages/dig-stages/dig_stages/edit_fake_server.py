"""A local stand-in for the vLLM-Omni image-edit routes (tests and bench only; never injected into pods)."""

from __future__ import annotations

import base64
import io
import json
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast

import numpy as np
from PIL import Image

MODEL = "nvidia/Qwen-Image-Edit-NVPCB-OVSL2SL"

# An action for one request: "ok", "malformed", "badimage", "hang" or an int HTTP status
# (optionally (status, retry_after_seconds)).
Action = Any


def fake_edit(image: Image.Image, shift: tuple[int, int] = (3, -2)) -> Image.Image:
    """The "edit": a whole-pixel shift (edges repeated) plus an intensity change (gamma, channel tint)."""
    a = np.asarray(image.convert("RGB")).astype(np.float32) / 255.0
    dx, dy = shift
    h, w = a.shape[:2]
    ys = np.clip(np.arange(h) - dy, 0, h - 1)
    xs = np.clip(np.arange(w) - dx, 0, w - 1)
    a = a[ys][:, xs]
    a = np.power(a, 0.7) * np.array([1.0, 0.8, 0.9], np.float32)
    return Image.fromarray(np.clip(a * 255 + 0.5, 0, 255).astype(np.uint8))


def _parse_multipart(body: bytes, ctype: str) -> tuple[dict[str, str], dict[str, tuple[str, bytes]]]:
    boundary = ctype.split("boundary=", 1)[1].strip().strip('"').encode()
    fields: dict[str, str] = {}
    files: dict[str, tuple[str, bytes]] = {}
    for part in body.split(b"--" + boundary):
        part = part.strip(b"\r\n")
        if not part or part == b"--":
            continue
        head, _, data = part.partition(b"\r\n\r\n")
        disp = {}
        for line in head.decode().split("\r\n"):
            if line.lower().startswith("content-disposition"):
                for item in line.split(";")[1:]:
                    k, _, v = item.strip().partition("=")
                    disp[k] = v.strip('"')
        if "filename" in disp:
            files[disp["name"]] = (disp["filename"], data)
        else:
            fields[disp["name"]] = data.decode()
    return fields, files


@dataclass
class FakeEditServer:
    """ThreadingHTTPServer on 127.0.0.1:0 in a daemon thread; use as a context manager."""

    models: list[str] = field(default_factory=lambda: [MODEL])
    # each POST is answered latency_s after its body arrived, the server's own work included (a real
    # endpoint's latency is its whole response time), or as soon as that work is done if it takes longer
    latency_s: float = 0.0
    shift: tuple[int, int] = (3, -2)
    # filename -> actions played for its 1st, 2nd, ... request ("ok" after the list runs out)
    plan: dict[str, list[Action]] = field(default_factory=dict)
    default_action: Callable[[str, int], Action] | None = None
    requests: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._count: dict[str, int] = defaultdict(int)
        self._release = threading.Event()
        self.inflight = 0
        self.max_inflight = 0
        self.served: list[float] = []  # seconds from a POST's body arriving to its answer leaving

    # -- lifecycle
    def __enter__(self) -> FakeEditServer:
        self.httpd = _HTTPServer(self)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._release.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def _record(self, method: str, path: str, fields: dict[str, Any], fname: str, headers: Any) -> Action:
        with self._lock:
            self.requests.append(
                {
                    "method": method,
                    "path": path,
                    "fields": dict(fields),
                    "filename": fname,
                    "authorization": headers.get("Authorization"),
                }
            )
            if method != "POST":
                return "ok"
            i = self._count[fname]
            self._count[fname] += 1
        seq = self.plan.get(fname, [])
        if i < len(seq):
            return seq[i]
        return self.default_action(fname, i) if self.default_action else "ok"

    def posts(self, filename: str | None = None) -> int:
        with self._lock:
            return sum(
                r["method"] == "POST" and (filename is None or r["filename"] == filename)
                for r in self.requests
            )


class _HTTPServer(ThreadingHTTPServer):
    """The HTTP server of one FakeEditServer (`fake`), serving each connection in a daemon thread."""

    daemon_threads = True

    def __init__(self, fake: FakeEditServer) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.fake = fake


class _Handler(BaseHTTPRequestHandler):
    """GET /v1/models and the two POST routes, answering each POST as its FakeEditServer's plan says."""

    protocol_version = "HTTP/1.1"
    _due: float | None = None  # when the POST being served is to be answered (perf_counter)
    _counted = False  # whether that POST counts in the server's in-flight number

    @property
    def fake(self) -> FakeEditServer:
        return cast(_HTTPServer, self.server).fake

    def log_message(self, *a: Any) -> None:  # keep test output quiet
        pass

    def _send(self, code: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        # A request stops counting as in flight before its answer leaves: the client may send
        # its next request as soon as it reads this one, before a later decrement would run.
        self._leave()
        due = self._due
        if due is not None:
            self._due = None
            with self.fake._lock:
                self.fake.served.append(time.perf_counter() - due + self.fake.latency_s)
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        self.fake._record("GET", self.path, {}, "", self.headers)
        if self.path.rstrip("/") == "/v1/models":
            data = [{"id": m, "object": "model"} for m in self.fake.models]
            self._send(200, json.dumps({"object": "list", "data": data}).encode())
        else:
            self._send(404, b'{"error": "not found"}')

    def do_POST(self) -> None:  # noqa: N802
        n = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(n)
        self._due = time.perf_counter() + self.fake.latency_s
        if self.path not in ("/v1/images/edits", "/v1/chat/completions"):
            self._send(404, b'{"error": "not found"}')
            return
        try:
            fields, fname, image = self._read_post(body)
        except Exception as exc:  # noqa: BLE001 - a bad request is the client's bug: 400
            self._send(400, json.dumps({"error": f"bad request: {exc}"}).encode())
            return
        action = self.fake._record("POST", self.path, fields, fname, self.headers)
        with self.fake._lock:
            self.fake.inflight += 1
            self.fake.max_inflight = max(self.fake.max_inflight, self.fake.inflight)
        self._counted = True
        try:
            self._answer(action, image)
        finally:
            self._leave()

    def _read_post(self, body: bytes) -> tuple[dict[str, Any], str, Image.Image]:
        """(request fields, the name its plan is keyed by, the decoded input image) of a POST body."""
        if self.path == "/v1/images/edits":
            fields: dict[str, Any]
            fields, files = _parse_multipart(body, self.headers.get("Content-Type", ""))
            fname, data = files["image"]
        else:
            payload = json.loads(body)
            fields = {k: v for k, v in payload.items() if k != "messages"}
            parts = payload["messages"][0]["content"]
            url = next(p["image_url"]["url"] for p in parts if p["type"] == "image_url")
            fields["prompt"] = next(p["text"] for p in parts if p["type"] == "text")
            data = base64.b64decode(url.split(",", 1)[1])
            fname = str(payload.get("seed", "chat")) + ":" + str(len(self.fake.requests))
        image = Image.open(io.BytesIO(data))
        image.load()
        return fields, fname, image

    def _leave(self) -> None:
        if self._counted:
            self._counted = False
            with self.fake._lock:
                self.fake.inflight -= 1

    def _wait(self) -> None:
        assert self._due is not None
        time.sleep(max(0.0, self._due - time.perf_counter()))

    def _answer(self, action: Action, image: Image.Image) -> None:
        if action == "hang":
            self._wait()
            self.fake._release.wait(30)
            return
        if isinstance(action, tuple) or isinstance(action, int):
            code, after = action if isinstance(action, tuple) else (action, None)
            hdr = {"Retry-After": str(after)} if after is not None else {}
            self._wait()
            self._send(code, json.dumps({"error": f"injected {code}"}).encode(), hdr)
            return
        if action == "malformed":
            self._wait()
            self._send(200, b'{"data": [{"b64_j')
            return
        payload = self._edited_body(image, action == "badimage")
        self._wait()
        self._send(200, payload)

    def _edited_body(self, image: Image.Image, bad_image: bool) -> bytes:
        """The route's 200 body carrying the fake edit of `image` (or bytes that are no image)."""
        edited = fake_edit(image, self.fake.shift)
        buf = io.BytesIO()
        edited.save(buf, format="PNG", compress_level=1)
        b64 = base64.b64encode(buf.getvalue()).decode()
        if bad_image:
            b64 = base64.b64encode(b"not an image").decode()
        if self.path == "/v1/images/edits":
            out: dict[str, Any] = {"created": int(time.time()), "data": [{"b64_json": b64}]}
        else:
            content = [{"type": "image_url", "image_url": {"url": "data:image/png;base64," + b64}}]
            out = {"choices": [{"message": {"role": "assistant", "content": content}}]}
        return json.dumps(out).encode()
