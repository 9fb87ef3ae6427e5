"""Render and crop cookbooks, and the pods' GPU/CPU/memory sizing."""

from __future__ import annotations

from collections.abc import Callable

from compiler.errors import Diagnostic
from compiler.rules.registry import Config, err, gib, rule, warn


@rule(
    "A12",
    "notice",
    "crop_max_emit equal to the board cookbook's crop.max_emit changes nothing (said, not silent)",
)
def _crop_max_emit_same(config: Config, explicit: set[str]) -> list[Diagnostic]:
    knobs, crop = config["knobs"], (config["cookbooks"].get("day0_crop") or {}).get("crop") or {}
    value = knobs.get("crop_max_emit", "")
    if "crop_max_emit" in explicit and value != "" and "max_emit" in crop and value == crop["max_emit"]:
        return [
            Diagnostic(
                "notice",
                "knobs.crop_max_emit",
                f"={value} is already the cap of board "
                f"'{config['board']['key']}' (cookbooks.day0_crop.crop.max_emit): nothing changes",
                rule="A12",
            )
        ]
    return []


@rule("A14", "warning", "structural render_patches=1 may land on an empty cell")
def _structural_patches(config: Config, explicit: set[str]) -> list[Diagnostic]:
    knobs = config["knobs"]
    if config["flow"]["key"] == "structural" and knobs.get("render_patches") == 1:
        return [
            warn(
                "knobs.render_patches",
                "=1 can render an empty cell and fail with 0 crops; use >= 2 (3 recommended)",
                1,
                "-1 or >= 2",
                "A14",
            )
        ]
    return []


_SIZING: dict[str, tuple[Callable[[int], int], Callable[[int], int]]] = {
    "train": (lambda g: max(16, 8 * g), lambda g: max(64, 48 * g)),
    "infer": (lambda g: 4 * g, lambda g: max(64, 48 * g)),
}


def _in_gi(value: int) -> str:
    return f"{value}Gi"


@rule(
    "A28",
    "warning notice",
    "GPU scaling: cpu and memory follow the sizing rule (derived when not given, warned when below)",
)
def _sizing(config: Config, explicit: set[str]) -> list[Diagnostic]:
    knobs = config["knobs"]
    out = []
    for prefix, (cpu_rule, mem_rule) in _SIZING.items():
        gpu_key = f"{prefix}_gpu"
        if gpu_key not in knobs:
            continue
        gpus = knobs[gpu_key]
        need_cpu, need_mem = cpu_rule(gpus), mem_rule(gpus)
        checks: list[tuple[str, int, float, Callable[[int], str]]] = [
            (f"{prefix}_cpu", need_cpu, knobs[f"{prefix}_cpu"], str),
            (f"{prefix}_memory", need_mem, gib(knobs[f"{prefix}_memory"]), _in_gi),
        ]
        for key, need, have, fmt in checks:
            if have >= need:
                continue
            if key in explicit or gpu_key not in explicit:
                out.append(
                    warn(
                        f"knobs.{key}",
                        f"is below the sizing rule for {gpus} GPU(s) "
                        "(spec/endpoint_and_sizing.md §2); ranks may be OOM-killed",
                        knobs[key],
                        f">= {fmt(need)}",
                        "A28",
                    )
                )
            else:
                knobs[key] = need if key.endswith("_cpu") else f"{need}Gi"
                out.append(
                    Diagnostic(
                        "notice",
                        f"knobs.{key}",
                        f"derived {knobs[key]} from {gpu_key}={gpus} "
                        "(sizing rule); set it explicitly to override",
                        rule="A28",
                    )
                )
    for key in ("render_gpu", "augment_gpu"):
        if knobs.get(key, 1) > 1:
            out.append(
                warn(
                    f"knobs.{key}",
                    "render and image-edit are single-pod stages; extra GPUs sit idle",
                    knobs[key],
                    "1",
                    "A28",
                )
            )
    return out


@rule(
    "A40 A41 A43",
    "error",
    "structural render cookbook: explicit component_types list; writer emits `defect` labels",
)
def _defect_image(config: Config, explicit: set[str]) -> list[Diagnostic]:
    book = config["cookbooks"].get("defect_image")
    if not book:
        return []
    out = []
    types = book.get("component_types")
    if not isinstance(types, list) or not types:
        out.append(
            err(
                "cookbooks.defect_image.component_types",
                "must be an explicit, non-empty list of "
                "component prim names (no ALL handler in the structural pipeline)",
                types,
                "e.g. [_0603_H100]",
                "A40",
            )
        )
    if "defect" not in (book.get("writer") or {}).get("semantic_types", []):
        out.append(
            err(
                "cookbooks.defect_image.writer.semantic_types",
                "must include 'defect', or no defect labels are written",
                (book.get("writer") or {}).get("semantic_types"),
                "[defect]",
                "A43",
            )
        )
    return out


@rule("A44", "error", "every crop class must be a label class of the cookbook's semantics rules")
def _crop_classes(config: Config, explicit: set[str]) -> list[Diagnostic]:
    books = config["cookbooks"]
    out = []
    for crop_book, sem_book in (("day0_crop", "day0_image"), ("usd2roi_nvpcb", "usd2roi_nvpcb")):
        if crop_book not in books or sem_book not in books:
            continue
        crop = books[crop_book].get("crop") or {}
        labels = {r.get("labels", {}).get("class") for r in books[sem_book].get("semantics") or []}
        for cls in crop.get("classes") or []:
            if cls not in labels:
                out.append(
                    err(
                        f"cookbooks.{crop_book}.crop.classes",
                        f"class '{cls}' is not produced by "
                        f"cookbooks.{sem_book}.semantics (0 ROI crops would be emitted)",
                        cls,
                        ", ".join(sorted(filter(None, labels))),
                        "A44",
                    )
                )
            if cls not in (crop.get("class_dirs") or {}):
                out.append(
                    err(
                        f"cookbooks.{crop_book}.crop.class_dirs",
                        f"has no material directory for class '{cls}'",
                        crop.get("class_dirs"),
                        rid="A44",
                    )
                )
    return out


@rule("A45", "warning", "cookbook max_image_count is always replaced by knobs.render_patches")
def _max_image_count(config: Config, explicit: set[str]) -> list[Diagnostic]:
    out = []
    shipped = {"day0_image": ("__MAX_IMAGE_COUNT__",), "defect_image": (5, -1)}
    for name, values in shipped.items():
        book = config["cookbooks"].get(name)
        if book and book.get("max_image_count") not in values:
            out.append(
                warn(
                    f"cookbooks.{name}.max_image_count",
                    "has no effect: it is always set from knobs.render_patches",
                    book.get("max_image_count"),
                    "knobs.render_patches",
                    "A45",
                )
            )
    return out
