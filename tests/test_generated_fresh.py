"""workflows_generated/ must equal a fresh compile of the shipped matrix (CI regenerates, never commits)."""

from __future__ import annotations

from compiler.paths import GENERATED_DIR


def test_workflows_generated_is_fresh(matrix_texts):
    stale = [
        rel
        for rel, text in matrix_texts.items()
        if not (GENERATED_DIR / rel).is_file() or (GENERATED_DIR / rel).read_text(encoding="utf-8") != text
    ]
    orphans = sorted(
        p.relative_to(GENERATED_DIR).as_posix()
        for p in GENERATED_DIR.rglob("*.yaml")
        if p.relative_to(GENERATED_DIR).as_posix() not in matrix_texts
    )
    assert not stale and not orphans, (
        f"workflows_generated/ is out of date (stale: {stale}, orphans: {orphans}); "
        "run `nox -s compile` and commit the result"
    )
