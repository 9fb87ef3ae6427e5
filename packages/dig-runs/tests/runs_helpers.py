"""Helpers for the dig-runs tests: run `dig VERB` in-process, a simulated clock."""

from __future__ import annotations

import io


class SimClock:
    """A simulated clock: sleep advances time, nothing waits."""

    def __init__(self) -> None:
        self.t = 0.0
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds


def sim_clock():
    from dig_runs.watch import Clock

    sim = SimClock()
    return sim, Clock(now=sim.now, sleep=sim.sleep)


def dig(*argv: str, **kw) -> tuple[int, str]:
    """Run `dig VERB ...` in-process; (exit code, stdout)."""
    from dig_runs.cli import main

    out = io.StringIO()
    code = main(list(argv), out=out, **kw)
    return code, out.getvalue()
