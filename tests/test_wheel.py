"""dig installs like any Python package: wheels built from the repo compile from any directory."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from compiler.paths import REPO_ROOT

pytestmark = pytest.mark.slow

PROJECTS = [".", "packages/dig-stages", "packages/dig-preflight", "packages/dig-outputs", "packages/dig-runs"]
_SKIP = shutil.ignore_patterns(".git", "build", "__pycache__", "*.egg-info", ".nox", ".venv", "tests")


def _run(cmd: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{' '.join(cmd)} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def test_wheels_install_into_a_fresh_venv_and_compile_outside_the_repo(tmp_path):
    # Build from a copy: an in-tree setuptools build would write build/lib into the repo's build/.
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(REPO_ROOT / "pyproject.toml", src)
    for name in ("compiler", "conf", "packages"):
        shutil.copytree(REPO_ROOT / name, src / name, ignore=_SKIP)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DIG_CONF_DIR")}
    env["DIG_PREFERENCES"] = os.devnull
    wheels = tmp_path / "wheels"
    # No network: build with the setuptools already installed; third-party deps come from the system site.
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(wheels),
            *PROJECTS,
        ],
        src,
        env,
    )
    built = sorted(p.name.split("-")[0] for p in wheels.glob("*.whl"))
    assert built == ["dig", "dig_outputs", "dig_preflight", "dig_runs", "dig_stages"], built

    venv.create(tmp_path / "venv", system_site_packages=True, with_pip=False)
    py = tmp_path / "venv" / "bin" / "python"
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(py),
            "install",
            "-q",
            "--no-index",
            "--no-deps",
            *map(str, wheels.glob("*.whl")),
        ],
        tmp_path,
        env,
    )

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = _run(
        [str(py), "-c", "import compiler.paths as p; print(p.CONF_DIR); print(p.STAGES_DIR)"], elsewhere, env
    ).stdout.split()
    assert all("site-packages" in w for w in where), where  # the installed copies, not the repo

    dig = tmp_path / "venv" / "bin" / "dig"
    out = _run([str(dig)], elsewhere, env)  # bare `dig`: the default workflow
    written = Path(out.stdout.strip().splitlines()[-1])
    assert written == elsewhere / "build" / "day0" / "pcb__0603_H100__pretrained.yaml"
    # The same bytes as bare `dig` from the source tree (the shipped matrix file differs only in its
    # header, which lists the matrix's own override).
    from compiler.compose import parse_overrides
    from compiler.pipeline import compile_request

    expected = compile_request(parse_overrides([]), prefs={}).text
    assert written.read_text(encoding="utf-8") == expected
    assert "Traceback" not in out.stderr
    # The lifecycle verbs come from the dig-runs wheel: `dig runs` reads an (empty) run record.
    env["XDG_STATE_HOME"] = str(tmp_path / "state")
    runs = _run([str(dig), "runs", "--json"], elsewhere, env)
    assert json.loads(runs.stdout) == [], runs.stdout
