"""Which stage trees and OSMO tasks each DIG flow leaves under `runs/<name>/` (storage_layout.md §5)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Stage:
    """One stage directory under `runs/<name>/` and the OSMO task that writes it."""

    dir: str
    task: str
    # Optional stages exist only when scheduled (finetune: use_pretrained_checkpoint false;
    # usd2roi-day1: use_usd2roi_day1 true), so their absence is not an error.
    optional: bool = False


@dataclass(frozen=True)
class Flow:
    name: str
    title: str
    stages: tuple[Stage, ...]

    @property
    def stage_dirs(self) -> tuple[str, ...]:
        return tuple(s.dir for s in self.stages)

    def stage(self, dir_name: str) -> Stage:
        for s in self.stages:
            if s.dir == dir_name:
                return s
        raise KeyError(dir_name)


_USD2ROI = Stage("usd2roi-components", "usd2roi-replicator")
_AUGMENT = Stage("augment", "image-edit")
_FINETUNE_OPT = Stage("finetune", "finetune", optional=True)
_ANOMALY = Stage("anomaly", "infer-all-defects")

FLOWS: dict[str, Flow] = {
    f.name: f
    for f in (
        Flow("day0", "Day 0 texture", (_USD2ROI, _AUGMENT, _FINETUNE_OPT, _ANOMALY)),
        Flow("good_image", "Good image", (_USD2ROI, _AUGMENT)),
        Flow(
            "structural",
            "Structural",
            (Stage("structural_defect", "sdg-and-crop"), Stage("structural_defect_edited", "image-edit")),
        ),
        # usd2roi-day1 is Jinja-gated upstream but documented as "do not flip": treat it as required
        # so a real-align run without it is reported instead of silently previewed without inputs.
        Flow("day1", "Day 1 real-align", (Stage("usd2roi-day1", "usd2roi-day1"), _FINETUNE_OPT, _ANOMALY)),
        Flow("day1_manual_roi", "Day 1 manual ROI", (_FINETUNE_OPT, _ANOMALY)),
        Flow("finetune", "Finetune only", (Stage("finetune", "finetune"),)),
    )
}


def get_flow(name: str) -> Flow:
    """The flow called `name`; `ValueError` naming the known flows otherwise."""
    try:
        return FLOWS[name]
    except KeyError:
        raise ValueError(f"unknown flow {name!r}; known flows: {', '.join(FLOWS)}") from None
