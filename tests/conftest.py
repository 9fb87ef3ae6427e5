"""Compiler test fixtures: isolated preferences, one shared Composer, compile helpers."""

from __future__ import annotations

import pytest

from compiler.compose import Composer, parse_overrides
from compiler.pipeline import Compiled, compile_request


@pytest.fixture(autouse=True)
def _no_user_preferences(monkeypatch, tmp_path_factory):
    # Tests never read the developer's own preferences file.
    monkeypatch.setenv("DIG_PREFERENCES", str(tmp_path_factory.getbasetemp() / "no-prefs.yaml"))


@pytest.fixture(scope="session")
def composer() -> Composer:
    return Composer()


@pytest.fixture(scope="session")
def compile_args(composer):
    def run(*args: str, prefs: dict[str, str] | None = None) -> Compiled:
        return compile_request(parse_overrides(list(args)), composer=composer, prefs=prefs or {})

    return run


@pytest.fixture(scope="session")
def matrix_compiled() -> dict[str, Compiled]:
    from compiler.matrix import compile_matrix_results

    return compile_matrix_results()


@pytest.fixture(scope="session")
def matrix_texts(matrix_compiled) -> dict[str, str]:
    """{relative path: submit-ready text}, what workflows_generated/ holds."""
    return {rel: c.text for rel, c in matrix_compiled.items()}
