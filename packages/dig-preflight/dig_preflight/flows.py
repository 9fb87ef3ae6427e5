"""Which storage artifacts each DIG flow reads, with the use-case defaults the compiler applies."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

FLOWS = ("day0", "good_image", "structural", "day1", "day1_manual_roi", "finetune", "setup", "setup_pretrained")
BUILTIN_USECASES = ("pcb", "metal_surface", "glass")
DEFAULT_ROOT = "s3://osmo-workflows/dig"
DEFAULT_BOARD = "0603_H100"
DEFAULT_SCENE = "spark_lighting.usd"
# The photo keeps its underscore name: it is a file, the board id is a Jinja path segment (knobs §0.12).
BOARD_REAL_IMAGES = {
    "0603_H100": "input_real_image/0603_H100.jpg",
    "1152819000": "input_real_image/115_2819_000.jpg",
}
DAY0_PCB_TYPES = [["IC", "bridge"], ["passive_component", "excess_solder"], ["passive_component", "missing"]]
DAY1_DEFAULT_TYPES = [["passive_component", "missing"]]
# Shipped checkpoint step and the Day 1 auto-swap taxonomy per use case (knobs §0.7, §0.8).
USECASE_STEP = {"pcb": 14000, "metal_surface": 10000, "glass": 9000}
USECASE_DAY1_TYPES = {
    "pcb": DAY1_DEFAULT_TYPES,
    "metal_surface": [["metal_surface", d] for d in ("MT_Blowhole", "MT_Break", "MT_Crack", "MT_Fray", "MT_Uneven")],
    "glass": [["Phone", d] for d in ("oil", "scratch", "stain")],
}
DEFAULT_STEP = 14000


class UsageError(ValueError):
    """Arguments that name no supported check (exit 2)."""


@dataclass(frozen=True)
class Artifact:
    """One thing a flow reads from storage, and what must be true about it.

    kind: `prefix` (non-empty), `pretrained` (holds a `pretrained/` tree), `checkpoint`
    (ag_config.yaml whose anomaly_types cover `pairs` + iter_<step>.pt), `raw`
    (defect_spec.jsonl + a mask image per anomaly pair), `assets` (scene USD [+ real photo]),
    `zip` (mobile_screen.zip), `run_absent` (runs/<name>/ must not exist).
    """

    kind: str
    url: str
    role: str
    params: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


def checkpoint_filename(step: int) -> str:
    """`iter_<step zero-padded to 9 digits>.pt`, the shipped and trainer naming rule."""
    return f"iter_{int(step):09d}.pt"


def real_image_for_board(board: str) -> str:
    return BOARD_REAL_IMAGES.get(board, f"input_real_image/{board}.jpg")


def parse_anomaly_types(value: Any) -> list[list[str]]:
    """A JSON string or a list of `[material, defect]` string pairs, validated."""
    pairs = json.loads(value) if isinstance(value, str) else value
    if not isinstance(pairs, list) or not pairs:
        raise UsageError(f"anomaly types must be a non-empty JSON list of [material, defect] pairs, got {value!r}")
    for i, pair in enumerate(pairs):
        if not (isinstance(pair, list | tuple) and len(pair) == 2 and all(isinstance(s, str) and s for s in pair)):
            raise UsageError(f"anomaly types entry {i} must be [material, defect] strings, got {pair!r}")
        if any("/" in s for s in pair):
            raise UsageError(f"anomaly types entry {i} contains '/': {pair!r}")
    return [list(p) for p in pairs]


@dataclass
class FlowRequest:
    """What the user asked to preflight, with compiler defaults resolved by `resolve()`."""

    flow: str
    usecase: str = "pcb"
    root: str = DEFAULT_ROOT
    checkpoint_step: int | None = None
    use_pretrained_checkpoint: bool = True
    anomaly_types: list[list[str]] | None = None
    name: str | None = None
    board: str = DEFAULT_BOARD
    scene_filename: str = DEFAULT_SCENE
    real_image_filename: str | None = None
    zip_root: str | None = None

    def resolve(self) -> FlowRequest:
        if self.flow not in FLOWS:
            raise UsageError(f"unknown flow {self.flow!r}; choose one of: {', '.join(FLOWS)}")
        if self.flow in ("day0", "good_image", "structural") and self.usecase != "pcb":
            raise UsageError(f"flow {self.flow} exists only for usecase pcb (got {self.usecase!r})")
        self.root = self.root.rstrip("/")
        if not self.root.startswith("s3://"):
            raise UsageError(f"--root must be an s3:// URL, got {self.root!r}")
        if self.checkpoint_step is None:
            # Day 0 has no auto-swap: its template default is pcb's 14000 (knobs §0.7).
            self.checkpoint_step = USECASE_STEP.get(self.usecase, DEFAULT_STEP)
        if self.anomaly_types is None:
            if self.flow == "day0":
                self.anomaly_types = DAY0_PCB_TYPES
            elif self.flow in ("day1", "day1_manual_roi"):
                self.anomaly_types = USECASE_DAY1_TYPES.get(self.usecase, DAY1_DEFAULT_TYPES)
        if self.real_image_filename is None:
            self.real_image_filename = real_image_for_board(self.board)
        return self


def required_artifacts(req: FlowRequest) -> list[Artifact]:
    """The storage artifacts `req.flow` reads (scripts.md §3, widened to the files inside them)."""
    req.resolve()
    r, u, f = req.root, req.usecase, req.flow
    pretrained = Artifact("pretrained", f"{r}/models/pretrained", "pretrained models")
    checkpoint = Artifact(
        "checkpoint", f"{r}/models/{u}", f"{u} checkpoint", {"step": req.checkpoint_step, "pairs": req.anomaly_types}
    )
    raw = Artifact("raw", f"{r}/datasets/{u}/raw", f"{u} raw dataset", {"pairs": req.anomaly_types})
    real_align = f == "day1" and u == "pcb"
    assets = Artifact(
        "assets",
        f"{r}/datasets/pcb/assets",
        "PCBA USD assets",
        {"scene": req.scene_filename, "real_image": req.real_image_filename if real_align else None},
    )
    out: list[Artifact] = []
    if f in ("day0", "day1", "day1_manual_roi"):
        out += [pretrained, raw]
        if req.use_pretrained_checkpoint:
            out.append(checkpoint)
        if f == "day0" or real_align:
            out.append(assets)
    elif f in ("good_image", "structural"):
        out.append(assets)
    elif f == "finetune":
        out += [pretrained, raw]
    elif f == "setup" and u == "glass":
        zip_root = (req.zip_root or f"{r}/uploads/glass-zip").rstrip("/")
        out.append(Artifact("zip", zip_root, "glass Roboflow zip"))
    # setup (pcb, metal_surface) and setup_pretrained read nothing from storage: they download from HF.
    if req.name and f not in ("setup", "setup_pretrained"):
        out.append(Artifact("run_absent", f"{r}/runs/{req.name}", f"run {req.name!r} output", {"name": req.name}))
    return out
