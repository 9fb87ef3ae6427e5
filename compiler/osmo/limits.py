"""Bounded work on hostile input: OSMO's render sandbox limits, and a bound on YAML alias expansion.

OSMO renders a submitted template in a sandbox worker that is stopped after 0.5 s or 100 MiB
(`src/lib/utils/jinja_sandbox.py`, spec/osmo_rules.md). The full Jinja path renders in a forked
child under RLIMIT_AS with a wall-clock deadline, so `{{ 'x' * 10**9 }}` or an endless loop ends
with a finding that names the limit, not with a 5 GB process. Plain `{{ var }}` substitution
(compiled output) never gets here, so the compile stays fast.
"""

from __future__ import annotations

import os
import pickle
import select
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

RENDER_LIMIT_S = 0.5  # OSMO's sandbox time limit
RENDER_LIMIT_BYTES = 100 * 2**20  # OSMO's sandbox memory limit
# This machine may be loaded: stop the child only well past OSMO's limit, and report either.
RENDER_DEADLINE_S = 4 * RENDER_LIMIT_S
# A compiled DIG workflow has a few thousand YAML nodes; a document that aliases out to more than
# this is an alias bomb ("billion laughs"), refused before anything walks it.
MAX_EXPANDED_NODES = 1_000_000


class LimitExceeded(Exception):
    """A render or a document went over a bound; the message names which."""


class RenderFailed(Exception):
    """The template raised; `kind` is the exception's type name in the sandbox."""

    def __init__(self, kind: str, message: str, exc: BaseException | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.exc = exc


def expanded_nodes(doc: Any, limit: int = MAX_EXPANDED_NODES) -> int:
    """Node count of `doc` with every alias expanded, computed over shared objects once each."""
    memo: dict[int, int] = {}
    stack: list[tuple[Any, bool]] = [(doc, False)]
    while stack:
        node, ready = stack.pop()
        if not isinstance(node, dict | list) or id(node) in memo:
            continue
        children = list(node.keys()) + list(node.values()) if isinstance(node, dict) else node
        if not ready:
            stack.append((node, True))
            stack.extend((c, False) for c in children if isinstance(c, dict | list) and id(c) not in memo)
            continue
        total = 1 + sum(memo.get(id(c), 0) if isinstance(c, dict | list) else 1 for c in children)
        if total > limit:
            raise LimitExceeded(
                f"YAML aliases expand to more than {limit:,} nodes (an alias bomb); "
                "write the values out or use fewer aliases"
            )
        memo[id(node)] = total
    return memo.get(id(doc), 1)


def _vm_bytes() -> int:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return 0


def _child(render: Callable[[], Any], wfd: int) -> None:
    import resource

    base = _vm_bytes()
    if base:
        resource.setrlimit(resource.RLIMIT_AS, (base + RENDER_LIMIT_BYTES, base + RENDER_LIMIT_BYTES))
    started = time.process_time()
    try:
        result: tuple[Any, ...] = ("ok", render(), time.process_time() - started)
    except MemoryError:
        result = ("memory",)
    except BaseException as exc:  # a template can raise anything; the parent reports it
        result = ("error", type(exc).__name__, str(exc)[:2000])
    data = pickle.dumps(result)
    view = memoryview(data)
    while view:
        view = view[os.write(wfd, view[: 1 << 20]) :]


def sandboxed_render(render: Callable[[], Any]) -> tuple[Any, float]:
    """Run `render` (compile and render: Jinja folds constants while compiling) in a forked child
    under OSMO's limits; return (text, CPU seconds) or raise LimitExceeded / RenderFailed."""
    if not sys.platform.startswith("linux"):
        started = time.process_time()
        return render(), time.process_time() - started
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never returns into the caller's code
        code = 0
        try:
            os.close(rfd)
            _child(render, wfd)
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    os.close(wfd)
    chunks: list[bytes] = []
    deadline = time.monotonic() + RENDER_DEADLINE_S
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([rfd], [], [], left)[0]:
                os.kill(pid, signal.SIGKILL)
                raise LimitExceeded(
                    f"rendering ran past OSMO's sandbox time limit of {RENDER_LIMIT_S} s "
                    f"(stopped after {RENDER_DEADLINE_S:g} s)"
                )
            chunk = os.read(rfd, 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(rfd)
        os.waitpid(pid, 0)
    try:
        result = pickle.loads(b"".join(chunks))
    except Exception:
        raise LimitExceeded(
            f"rendering went over OSMO's sandbox memory limit of {RENDER_LIMIT_BYTES // 2**20} MiB"
        ) from None
    if result[0] == "memory":
        raise LimitExceeded(
            f"rendering went over OSMO's sandbox memory limit of {RENDER_LIMIT_BYTES // 2**20} MiB"
        )
    if result[0] == "error":
        raise RenderFailed(result[1], result[2])
    return result[1], result[2]
