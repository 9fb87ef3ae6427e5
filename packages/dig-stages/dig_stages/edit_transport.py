"""Image-edit transport: HTTP requests to the vLLM-Omni routes, bounded retries with backoff, identity probe."""

from __future__ import annotations

import base64
import email.utils
import http.client
import io
import json
import random
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from typing import Any

from PIL import Image

from dig_stages.edit_config import REQUIRED_MODEL, ClientConfig


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
