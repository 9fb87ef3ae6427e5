"""Polling OSMO by the policy of spec/osmo_cli.md §5: transitions, backoff, retries, diagnosis on failure."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TextIO

from dig_runs import signatures as sig
from dig_runs.osmo import Osmo, OsmoError

SHORT_INTERVAL = 15.0  # §5: 10-15 s for short jobs
LONG_INTERVAL = 30.0  # §5: 30 s for training or data generation
MAX_INTERVAL = 60.0  # §5: back off to 60 s after several unchanged polls
UNCHANGED_BEFORE_BACKOFF = 3
MAX_CONCURRENT_QUERIES = 8


@dataclass
class Clock:
    now: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep


def base_interval(compiled_text: str | None) -> float:
    """30 s when the workflow runs GPU work (data generation, training: every DIG flow), else 15 s."""
    if not compiled_text:
        return SHORT_INTERVAL
    import yaml

    doc = yaml.load(compiled_text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    resources = (doc.get("workflow") or {}).get("resources") or {}
    gpu = any(int((r or {}).get("gpu") or 0) > 0 for r in resources.values())
    return LONG_INTERVAL if gpu else SHORT_INTERVAL


class Backoff:
    """The next poll interval: base while things change, 60 s after several unchanged polls or errors."""

    def __init__(self, base: float) -> None:
        self.base, self.unchanged, self.errors = base, 0, 0

    def after_poll(self, changed: bool) -> float:
        self.errors = 0
        self.unchanged = 0 if changed else self.unchanged + 1
        return max(MAX_INTERVAL, self.base) if self.unchanged >= UNCHANGED_BEFORE_BACKOFF else self.base

    def after_error(self, err: OsmoError) -> float:
        self.errors += 1
        if err.rc == 75:  # rate limited: wait the longest interval
            return max(MAX_INTERVAL, self.base)
        return max(self.base, min(MAX_INTERVAL, self.base * (2 ** (self.errors - 1))))


def tasks_of(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """`group/task` -> task entry of a `WorkflowQueryResponse`."""
    out = {}
    for group in doc.get("groups") or []:
        for task in group.get("tasks") or []:
            out[f"{group.get('name')}/{task.get('name')}"] = {**task, "_group": group}
    return out


@dataclass
class Failure:
    task: str
    status: str
    exit_code: int | None
    diagnosis: sig.Diagnosis | None = None
    upstream: str | None = None

    def lines(self) -> list[str]:
        if self.upstream is not None:
            return [f"  {self.task}: {self.status}: not run, upstream failed ({self.upstream})"]
        code = f" (exit {self.exit_code})" if self.exit_code is not None else ""
        d = self.diagnosis
        assert d is not None
        out = [f"  {self.task}: {self.status}{code}: {d.cause}", f"    fix: {d.fix}  [{d.ref}]"]
        if d.line:
            out.append(f"    log: {d.line}")
        return out

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"task": self.task, "status": self.status, "exit_code": self.exit_code}
        if self.upstream is not None:
            body["upstream"] = self.upstream
        if self.diagnosis:
            body.update(
                cause=self.diagnosis.cause,
                fix=self.diagnosis.fix,
                ref=self.diagnosis.ref,
                log_line=self.diagnosis.line,
            )
        return body


def diagnose(osmo: Osmo, workflow_id: str, doc: dict[str, Any]) -> list[Failure]:
    """Each failed task classified from its error log (§5: `logs ID -t TASK --error -n 200`)."""
    failures, failed_groups = [], []
    for key, task in tasks_of(doc).items():
        status = str(task.get("status") or "")
        if not status.startswith("FAILED"):
            continue
        code = task.get("exit_code")
        if status == "FAILED_UPSTREAM":
            failures.append(Failure(key, status, code, upstream=""))
            continue
        failed_groups.append(key.split("/", 1)[0])
        text = ""
        for _attempt in range(3):
            res = osmo.logs(workflow_id, task=str(task.get("name")), error=True, lines=200)
            if res.rc not in (10, 75):
                text = res.stdout if res.rc == 0 else ""
                break
        failures.append(Failure(key, status, code, sig.classify(text, code, status)))
    for f in failures:
        if f.upstream == "":
            f.upstream = ", ".join(dict.fromkeys(failed_groups)) or "an upstream group"
    return failures


def _fmt_elapsed(seconds: float) -> str:
    seconds = int(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


@dataclass
class WatchState:
    """What one workflow looked like at the last poll, and when each task entered its state."""

    run_name: str
    workflow_id: str
    base: float
    status: str | None = None
    tasks: dict[str, str] = field(default_factory=dict)
    since: dict[str, float] = field(default_factory=dict)
    started: float = 0.0
    last_poll: float | None = None
    backoff: Backoff | None = None
    failures: list[Failure] = field(default_factory=list)
    doc: dict[str, Any] | None = None
    polls: int = 0
    errors: int = 0

    def __post_init__(self) -> None:
        self.backoff = Backoff(self.base)

    @property
    def terminal(self) -> bool:
        return sig.is_terminal(self.status)


class Watcher:
    def __init__(
        self,
        osmo: Osmo,
        store: Any,
        *,
        clock: Clock | None = None,
        out: TextIO | None = None,
        tty: bool | None = None,
    ) -> None:
        self.osmo, self.store = osmo, store
        self.clock = clock or Clock()
        self.out = out or sys.stdout
        self.tty = self.out.isatty() if tty is None else tty

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def query(self, st: WatchState) -> dict[str, Any] | OsmoError:
        try:
            return self.osmo.query(st.workflow_id)
        except OsmoError as err:
            return err

    def poll(
        self, st: WatchState, *, quiet: bool = False, answer: dict[str, Any] | OsmoError | None = None
    ) -> float:
        """One query (or its answer, fetched elsewhere); the delay before the next. Never raises for an OSMO error (§5)."""
        now = self.clock.now()
        st.last_poll = now
        doc = self.query(st) if answer is None else answer
        if isinstance(doc, OsmoError):
            err = doc
            st.errors += 1
            delay = st.backoff.after_error(err)  # type: ignore[union-attr]
            kind = "rate limited" if err.rc == 75 else "server/connection error" if err.rc == 10 else "error"
            if not quiet:
                self.say(
                    f"{_stamp(now - st.started)} {st.run_name}: poll {kind} (exit {err.rc}): {err.message}; "
                    f"retrying in {delay:.0f} s (not a run failure)"
                )
            return delay
        st.polls += 1
        st.doc = doc
        changed = False
        for key, task in tasks_of(doc).items():
            tstatus = str(task.get("status") or "")
            old = st.tasks.get(key)
            if tstatus != old:
                changed = True
                st.tasks[key] = tstatus
                st.since[key] = now
                if not quiet and not self.tty:
                    extra = ""
                    if tstatus == "RUNNING" and (window := sig.quiet_window(key.split("/", 1)[1])):
                        extra = f"  (quiet but healthy stretches expected: {window})"
                    self.say(
                        f"{_stamp(now - st.started)} {st.run_name}: {key} {old or '-'} -> {tstatus}{extra}"
                    )
        status = str(doc.get("status") or "UNKNOWN")
        if status != st.status:
            changed = True
            if not quiet:
                self.say(f"{_stamp(now - st.started)} {st.run_name}: workflow {st.status or '-'} -> {status}")
            st.status = status
            if self.store is not None:
                self.store.observe(st.run_name, status, detail={"workflow_id": st.workflow_id})
        if not quiet and self.tty:
            self.say(self.table(st, now))
        if st.terminal and not st.failures and status != "COMPLETED":
            st.failures = diagnose(self.osmo, st.workflow_id, doc)
        return st.backoff.after_poll(changed)  # type: ignore[union-attr]

    def table(self, st: WatchState, now: float) -> str:
        rows = [
            f"\x1b[H\x1b[2J{st.run_name} ({st.workflow_id}): {st.status}   elapsed {_fmt_elapsed(now - st.started)}",
            f"{'GROUP/TASK':<48} {'STATUS':<18} IN STATE",
        ]
        for key, status in st.tasks.items():
            note = ""
            if status == "RUNNING" and (window := sig.quiet_window(key.split("/", 1)[1])):
                note = f"  quiet ok: {window}"
            rows.append(f"{key:<48} {status:<18} {_fmt_elapsed(now - st.since[key])}{note}")
        return "\n".join(rows)

    def watch(self, st: WatchState, *, interval: float | None = None) -> int:
        st.started = self.clock.now()
        while True:
            delay = self.poll(st)
            if st.terminal:
                return self.finish(st)
            self.clock.sleep(interval if interval is not None and not st.errors else delay)

    def finish(self, st: WatchState) -> int:
        kind, code = sig.terminal_class(str(st.status))
        elapsed = _fmt_elapsed(self.clock.now() - st.started)
        self.say(
            f"{st.run_name} ({st.workflow_id}): {st.status} [{kind}] after {elapsed}, {st.polls} polls, "
            f"{st.errors} poll errors retried; exit {code}"
        )
        if st.failures:
            self.say("failed tasks:")
            for f in st.failures:
                for line in f.lines():
                    self.say(line)
        return code

    def watch_many(
        self,
        states: list[WatchState],
        *,
        interval: float,
        render: Callable[[], None] | None = None,
        until: Callable[[], bool] | None = None,
    ) -> None:
        """Poll every live workflow at most once per `interval`, at most MAX_CONCURRENT_QUERIES at a time."""
        with ThreadPoolExecutor(max_workers=MAX_CONCURRENT_QUERIES) as pool:
            while True:
                live = [s for s in states if not s.terminal]
                if not live or (until and until()):
                    return
                now = self.clock.now()
                due = [s for s in live if s.last_poll is None or now - s.last_poll >= interval]
                answers = list(pool.map(self.query, due))  # the queries run concurrently, bounded
                delays = [self.poll(s, quiet=True, answer=a) for s, a in zip(due, answers, strict=True)]
                if render:
                    render()
                if until and until():
                    return
                if all(s.terminal for s in states):
                    return
                backoff = max([interval, *[d for d in delays if d > interval]]) if delays else interval
                self.clock.sleep(min(backoff, MAX_INTERVAL) if delays else interval)


def _stamp(elapsed: float) -> str:
    return f"[{_fmt_elapsed(elapsed):>8}]"


def sweep_exit(states: list[WatchState]) -> int:
    classes = {sig.terminal_class(str(s.status))[1] for s in states if s.terminal}
    for code in (sig.EXIT_FAILED, sig.EXIT_INFRASTRUCTURE, sig.EXIT_CANCELED, sig.EXIT_SUBMISSION):
        if code in classes:
            return code
    return sig.EXIT_COMPLETED
