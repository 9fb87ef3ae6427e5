"""Developer sessions for dig. `nox -s lint tests` is what CI runs (.ci/run)."""

from __future__ import annotations

import os
import shutil

import nox

nox.needs_version = ">=2025.2.9"
nox.options.sessions = ["lint", "tests"]
nox.options.reuse_existing_virtualenvs = True
# uv builds the session venvs and installs into them several times faster than virtualenv + pip
# (CI installs it from PyPI with nox: `pip install nox[uv]`); without uv, nox falls back to virtualenv.
nox.options.default_venv_backend = "uv|virtualenv"

PACKAGES = [
    "-e",
    ".[test]",
    "-e",
    "packages/dig-stages",
    "-e",
    "packages/dig-preflight",
    "-e",
    "packages/dig-outputs",
    "-e",
    "packages/dig-runs",
]
LINT_PATHS = ["compiler", "tests", "packages", "bench", "noxfile.py"]
# Stubs for the compiler's untyped dependencies; jinja2, hydra-core and omegaconf ship their own types.
MYPY_STUBS = ["types-PyYAML", "types-jsonschema"]


def _install(session: nox.Session) -> None:
    # A uv venv has neither pip nor setuptools; the wheel test builds with `python -m pip wheel
    # --no-build-isolation` (no network needed for a build env), so give it both.
    session.install("--upgrade", "pip", "setuptools>=61")
    session.install(*PACKAGES)


def _ensure_chromium(session: nox.Session) -> None:
    """The preview tests drive Debian's chromium; install it when we can (root + apt), never a downloaded one."""
    if shutil.which("chromium"):
        return
    root = hasattr(os, "geteuid") and os.geteuid() == 0
    sudo = [] if root else (["sudo", "-n"] if shutil.which("sudo") else None)
    if shutil.which("apt-get") and sudo is not None:
        session.run(*sudo, "apt-get", "update", "-qq", external=True)
        session.run(
            *sudo,
            "apt-get",
            "install",
            "-y",
            "-qq",
            "--no-install-recommends",
            "chromium",
            external=True,
            env={"DEBIAN_FRONTEND": "noninteractive"},
        )
    else:
        session.warn(
            "chromium is missing and cannot be installed here: browser tests will fail "
            "(install Debian's chromium, or set DIG_SKIP_BROWSER=1 to skip them knowingly)"
        )


@nox.session
def tests(session: nox.Session) -> None:
    """Install everything and run the whole test suite (compiler, dig-stages, dig-preflight, dig-outputs, dig-runs)."""
    _install(session)
    _ensure_chromium(session)
    session.run("python", "-m", "compiler.schema", "--check")
    session.run("python", "-m", "pytest", *session.posargs)


def _compiler_dependencies() -> list[str]:
    """The compiler's third-party dependencies, as pyproject.toml declares them (not the dig-* packages)."""
    declared = nox.project.load_toml("pyproject.toml")["project"]["dependencies"]
    return [d for d in declared if not d.startswith("dig-")]


@nox.session
def lint(session: nox.Session) -> None:
    """ruff lint and format check over every Python path of the repo; mypy strict over compiler/."""
    # mypy reads the compiler's dependencies' types, so they are installed with it; the pod packages
    # (dig-*) are not: [tool.mypy] skips them (follow_imports = skip).
    session.install("ruff", "mypy", *MYPY_STUBS, *_compiler_dependencies())
    session.run("ruff", "check", *LINT_PATHS)
    session.run("ruff", "format", "--check", *LINT_PATHS)
    session.run("mypy")  # [tool.mypy] in pyproject.toml: files = compiler/, strict


@nox.session(default=False)
def golden(session: nox.Session) -> None:
    """Regenerate golden/ (review text) and workflows_generated/ (submit-ready bytes); CI never runs this."""
    _install(session)
    env = {"DIG_PREFERENCES": os.devnull}
    # pytest-snapshot reports each rewritten golden as an error: expected here, so don't stop on it.
    session.run(
        "python",
        "-m",
        "pytest",
        "tests/test_golden.py",
        "--snapshot-update",
        "-q",
        env=env,
        success_codes=[0, 1],
    )
    session.run("python", "-m", "compiler.matrix", env=env)
    session.run(
        "python", "-m", "pytest", "tests/test_golden.py", "tests/test_generated_files.py", "-q", env=env
    )


@nox.session(default=False)
def compile(session: nox.Session) -> None:
    """Compile the shipped matrix into workflows_generated/ only (the golden session runs this too)."""
    _install(session)
    session.run("python", "-m", "compiler.matrix", env={"DIG_PREFERENCES": os.devnull})


@nox.session(default=False)
def bench(session: nox.Session) -> None:
    """Run the benchmarks in bench/ (ratios against baselines measured in the same run)."""
    _install(session)
    for script in (
        "compile_latency.py",
        "sweep.py",
        "crop.py",
        "align.py",
        "edit_client.py",
        "preflight.py",
        "runs.py",
    ):
        session.run("python", f"bench/{script}")


@nox.session(default=False)
def schema(session: nox.Session) -> None:
    """Export the composed-config JSON Schema for editors (compiler/schemas/config.schema.json)."""
    _install(session)
    session.run("python", "-m", "compiler.schema")
