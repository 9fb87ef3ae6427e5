"""The bytes in workflows_generated/ (what gets submitted) and the review text in golden/ agree.

golden/ shows each injected dig_stages module as one manifest line (in-pod path, sha256, size);
these tests read the committed files themselves, not a fresh compile, so what is submitted is
what was reviewed and what the package's tests ran.
"""

from __future__ import annotations

import hashlib
import re

import pytest
import yaml

from compiler import validate
from compiler.inject import POD_DIR
from compiler.matrix import shipped_matrix
from compiler.paths import GENERATED_DIR, GOLDEN_DIR, STAGES_DIR

PATHS = [e.path for e in shipped_matrix()]
MANIFEST = re.compile(r"contents: <injected (\S+) sha256=([0-9a-f]{64}) size=(\d+)>$", re.M)


def _injected(rel: str) -> list[tuple[str, str, str]]:
    """(task, in-pod path, contents) of every injected module in workflows_generated/<rel>, in file order."""
    doc = yaml.load((GENERATED_DIR / rel).read_text(encoding="utf-8"), Loader=yaml.CSafeLoader)
    return [
        (task["name"], f["path"], f["contents"])
        for group in doc["workflow"]["groups"]
        for task in group["tasks"]
        for f in task["files"]
        if f["path"].startswith(POD_DIR + "/")
    ]


@pytest.mark.parametrize("rel", PATHS)
def test_generated_modules_are_byte_identical_to_the_package(rel):
    injected = _injected(rel)
    assert injected, f"{rel} ships no dig_stages code"
    for task, path, contents in injected:
        module = path.rsplit("/", 1)[1][:-3]
        assert contents == (STAGES_DIR / f"{module}.py").read_text(encoding="utf-8"), f"{rel}:{task}:{path}"


@pytest.mark.parametrize("rel", PATHS)
def test_golden_manifest_lists_exactly_what_generated_ships(rel):
    manifest = MANIFEST.findall((GOLDEN_DIR / rel).read_text(encoding="utf-8"))
    shipped = [
        (path, hashlib.sha256(c.encode()).hexdigest(), str(len(c.encode()))) for _, path, c in _injected(rel)
    ]
    assert manifest == shipped, f"golden/{rel} and workflows_generated/{rel} disagree: run `nox -s golden`"


def test_golden_holds_no_module_source():
    # The review text stands for modules by hash; a spliced source here would defeat the review.
    for rel in PATHS:
        text = (GOLDEN_DIR / rel).read_text(encoding="utf-8")
        assert "DIG-STAGES-MODULE-" not in text and "from __future__ import" not in text, rel


def test_offline_validator_passes_every_generated_file(capsys):
    files = sorted(str(p) for p in GENERATED_DIR.rglob("*.yaml"))
    assert len(files) == len(PATHS)
    rc = validate.main(["-q", *files])
    assert rc == 0, capsys.readouterr()
