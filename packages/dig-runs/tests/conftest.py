"""Fixtures: a fake `osmo` on PATH driven by a scenario, an isolated run record, a compiled Day 0 file."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parents[2]
sys.path.insert(0, str(TESTS))

import fake_osmo  # noqa: E402


@dataclass
class FakeOsmo:
    dir: Path

    def scenario(self, **scenario) -> None:
        (self.dir / "scenario.json").write_text(json.dumps(scenario))

    def calls(self, verb: str | None = None) -> list[dict]:
        path = self.dir / "calls.jsonl"
        rows = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
        return [r for r in rows if verb is None or r["verb"] == verb]

    def workflows(self) -> dict:
        return json.loads((self.dir / "state.json").read_text())["workflows"]

    def runner(self):
        """In-process runner (same code as the executable): for the long simulated-clock watches."""
        from dig_runs.osmo import Result

        def run(args: list[str]) -> Result:
            return Result(*fake_osmo.run(args, self.dir))

        return run


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch, tmp_path_factory):
    monkeypatch.setenv("DIG_RUNS_DB", str(tmp_path / "state" / "runs.sqlite"))
    monkeypatch.setenv("DIG_PREFERENCES", str(tmp_path_factory.getbasetemp() / "no-prefs.yaml"))
    monkeypatch.delenv("XDG_STATE_HOME", raising=False)


@pytest.fixture
def osmo(tmp_path, monkeypatch) -> FakeOsmo:
    state = tmp_path / "osmo"
    bindir = tmp_path / "bin"
    state.mkdir()
    bindir.mkdir()
    exe = bindir / "osmo"
    exe.write_text(
        f"#!{sys.executable}\nimport sys\nsys.path.insert(0, {str(TESTS)!r})\n"
        "import fake_osmo\nsys.exit(fake_osmo.main())\n"
    )
    exe.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_OSMO_DIR", str(state))
    paths = [
        str(REPO),
        *(str(REPO / "packages" / p) for p in ("dig-stages", "dig-preflight", "dig-outputs", "dig-runs")),
    ]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([*paths, os.environ.get("PYTHONPATH", "")]))
    fake = FakeOsmo(state)
    fake.scenario()
    return fake


@pytest.fixture(scope="session")
def day0_file(tmp_path_factory) -> Path:
    """A Day 0 pcb workflow compiled without a run name (the shipped matrix file)."""
    path = REPO / "workflows_generated" / "day0" / "pcb__0603_H100__pretrained.yaml"
    assert path.is_file()
    return path
