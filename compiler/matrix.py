"""The shipped matrix: every flow x valid use case x board x use_pretrained_checkpoint, read off conf/.

python -m compiler.matrix            # compile the matrix into workflows_generated/ (nox -s compile)
python -m compiler.matrix --list     # print the compile keys
python -m compiler.matrix --check    # exit 1 if workflows_generated/ differs from a fresh compile
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import OmegaConf

from compiler.flows import declaration, flow_file, key_of, knob_names, uses_board
from compiler.paths import CONF_DIR, GENERATED_DIR, group_options

if TYPE_CHECKING:
    from compiler.pipeline import Compiled

# Values a compile key cannot be compiled without (no default on purpose), with the spec's convention.
REQUIRED_VALUES = {
    ("setup", "glass"): ["knobs.uc3_zip_url_root=s3://osmo-workflows/dig/uploads/glass-zip"],
}


@dataclass(frozen=True)
class MatrixEntry:
    key: str
    overrides: tuple[str, ...]

    @property
    def path(self) -> str:
        return f"{self.key}.yaml"


def _load(group: str, option: str) -> dict[str, Any]:
    return OmegaConf.to_container(OmegaConf.load(CONF_DIR / group / f"{option}.yaml"), resolve=False)  # type: ignore[return-value]


def shipped_matrix() -> list[MatrixEntry]:
    boards = {u: [str(b) for b in _load("usecase", u)["usecase"]["boards"]] for u in group_options("usecase")}
    entries: list[MatrixEntry] = []
    for flow in group_options("flow"):
        usecases = flow_file(flow)["flow"]["usecases"]
        for uc in usecases[:1] if flow_file(flow)["flow"].get("usecase_free") else usecases:
            entries += _entries(flow, uc, boards[uc])
    return entries


def _entries(flow: str, uc: str, usecase_boards: list[str]) -> list[MatrixEntry]:
    """Every board (a board flow) x use_pretrained_checkpoint (where the flow has it) of flow x use case."""
    decl = declaration(flow, uc)
    boards: list[str | None] = list(usecase_boards) if uses_board(decl) else [None]
    ckpt: list[bool | None] = [True, False] if "use_pretrained_checkpoint" in knob_names(flow, uc) else [None]
    out = []
    for board in boards:
        for pretrained in ckpt:
            ov = [f"flow={flow}", f"usecase={uc}"]
            if board:
                ov.append(f"board={board}")
            if pretrained is not None:
                ov.append(f"knobs.use_pretrained_checkpoint={str(pretrained).lower()}")
            ov += REQUIRED_VALUES.get((flow, uc), [])
            key = key_of(flow, uc, board, pretrained, bool(decl.get("usecase_free")))
            out.append(MatrixEntry(key, tuple(ov)))
    return out


def compile_matrix_results() -> dict[str, Compiled]:
    """{relative path: Compiled} for the whole matrix, compiled with no preferences and the suggested root."""
    from compiler.compose import Composer, parse_overrides
    from compiler.pipeline import compile_request

    composer = Composer()
    out = {}
    for entry in shipped_matrix():
        compiled = compile_request(parse_overrides(list(entry.overrides)), composer=composer, prefs={})
        assert compiled.key == entry.key, (compiled.key, entry.key)
        out[entry.path] = compiled
    return out


def compile_matrix() -> dict[str, str]:
    """{relative path: submit-ready text} for the whole matrix (what workflows_generated/ holds)."""
    return {rel: c.text for rel, c in compile_matrix_results().items()}


def write_tree(root: Path, files: dict[str, str]) -> list[str]:
    """Write files under root atomically, delete orphans; return what changed."""
    from compiler.pipeline import write_atomic

    changed = []
    for rel, text in files.items():
        path = root / rel
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            write_atomic(path, text)
            changed.append(rel)
    for path in sorted(root.rglob("*.yaml")):
        rel = path.relative_to(root).as_posix()
        if rel not in files:
            path.unlink()
            changed.append(f"{rel} (deleted)")
    return changed


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if "--list" in args:
        for entry in shipped_matrix():
            print(entry.key, " ".join(entry.overrides))
        return 0
    files = compile_matrix()
    if "--check" in args:
        stale = [
            rel
            for rel, text in files.items()
            if not (GENERATED_DIR / rel).is_file()
            or (GENERATED_DIR / rel).read_text(encoding="utf-8") != text
        ]
        orphans = [
            p.relative_to(GENERATED_DIR).as_posix()
            for p in GENERATED_DIR.rglob("*.yaml")
            if p.relative_to(GENERATED_DIR).as_posix() not in files
        ]
        if stale or orphans:
            for rel in stale + orphans:
                print(f"stale: workflows_generated/{rel}", file=sys.stderr)
            print(
                "workflows_generated/ is out of date: run `nox -s compile` (python -m compiler.matrix)",
                file=sys.stderr,
            )
            return 1
        print(f"workflows_generated/ is fresh ({len(files)} compile keys)")
        return 0
    changed = write_tree(GENERATED_DIR, files)
    for rel in changed:
        print(f"updated: workflows_generated/{rel}")
    print(f"{len(files)} compile keys, {len(changed)} changed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
