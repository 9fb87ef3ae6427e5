"""Goldens: one exact-text snapshot per shipped compile key, discovered from conf/ (not hand-listed).

Regenerate with `nox -s golden` (pytest tests/test_golden.py --snapshot-update); CI never does.
"""

from __future__ import annotations

import pytest

from compiler.matrix import shipped_matrix
from compiler.paths import GOLDEN_DIR

MATRIX = shipped_matrix()


@pytest.mark.parametrize("entry", MATRIX, ids=[e.key for e in MATRIX])
def test_golden(entry, matrix_compiled, snapshot):
    # The review text: injected dig_stages modules appear as one manifest line each (path, sha256, size).
    flow, name = entry.path.split("/")
    snapshot.snapshot_dir = GOLDEN_DIR / flow
    snapshot.assert_match(matrix_compiled[entry.path].review_text, name)


def test_no_orphan_goldens():
    expected = {e.path for e in MATRIX}
    present = {p.relative_to(GOLDEN_DIR).as_posix() for p in GOLDEN_DIR.rglob("*.yaml")}
    assert present == expected, (
        f"orphans: {sorted(present - expected)}, missing: {sorted(expected - present)}"
    )


def test_matrix_covers_every_flow_usecase_board_and_checkpoint_mode():
    keys = {e.key for e in MATRIX}
    assert len(keys) == len(MATRIX) == 29
    assert "day0/pcb__1152819000__finetune" in keys
    assert "day1/glass__pretrained" in keys and "day1/pcb__0603_H100__finetune" in keys
    assert "setup/glass" in keys and "setup_pretrained/shared" in keys
    assert not any(k.startswith("day0/glass") or k.startswith("structural/metal") for k in keys)
