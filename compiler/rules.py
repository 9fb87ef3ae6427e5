"""Cross-field rules: what spec/failure_modes.md §A says a compiler can catch, each with a severity.

Every rule is a function `(config, explicit) -> list[Diagnostic]` registered in RULES with the
failure-mode id(s) it covers and a one-line summary; check_rules runs them all, in order.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from compiler.errors import Diagnostic
from compiler.flows import calls_endpoint, takes_run_name

MODEL_ID = "nvidia/Qwen-Image-Edit-NVPCB-OVSL2SL"
Rule = Callable[[dict[str, Any], set[str]], list[Diagnostic]]
RULES: list[tuple[str, str, Rule]] = []


def rule(ids: str, summary: str):
    def deco(fn: Rule) -> Rule:
        RULES.append((ids, summary, fn))
        return fn

    return deco


def finetune_scheduled(config: dict[str, Any]) -> bool:
    knobs = config["knobs"]
    return config["flow"]["key"] == "finetune" or knobs.get("use_pretrained_checkpoint") is False


def _err(key: str, message: str, got: object = None, allowed: str | None = None, rid: str = "") -> Diagnostic:
    return Diagnostic("error", key, message, got, allowed, rid)


def _warn(
    key: str, message: str, got: object = None, allowed: str | None = None, rid: str = ""
) -> Diagnostic:
    return Diagnostic("warning", key, message, got, allowed, rid)


def _gib(quantity: str) -> float:
    m = re.match(r"^([0-9.]+)([A-Za-z]*)$", quantity)
    if not m:
        return 0.0
    number, unit = float(m.group(1)), m.group(2)
    scale = {
        "Ti": 1024,
        "TiB": 1024,
        "T": 1e12 / 2**30,
        "Gi": 1,
        "GiB": 1,
        "G": 1e9 / 2**30,
        "Mi": 1 / 1024,
        "MiB": 1 / 1024,
        "M": 1e6 / 2**30,
        "Ki": 1 / 2**20,
        "KiB": 1 / 2**20,
        "K": 1e3 / 2**30,
        "B": 1 / 2**30,
    }
    return number * scale.get(unit, 1 / 2**30)


@rule("A16", "defect_modes: `all` or a comma list of shift/tombstone/sideflip, no spaces, empties or repeats")
def _defect_modes(config, explicit):
    knobs = config["knobs"]
    if "defect_modes" not in knobs:
        return []
    from dig_stages.structural import parse_defect_modes

    try:
        parse_defect_modes(knobs["defect_modes"])
    except ValueError as exc:
        return [
            _err(
                "knobs.defect_modes",
                str(exc),
                knobs["defect_modes"],
                "all, or e.g. shift,tombstone (no spaces)",
                "A16",
            )
        ]
    return []


@rule(
    "A19", "anomaly types must be ones the shipped checkpoint was trained on (use_pretrained_checkpoint=true)"
)
def _taxonomy(config, explicit):
    knobs = config["knobs"]
    pairs = knobs.get("anomaly_types_json")
    if pairs is None:
        return []
    out = []
    seen = set()
    for pair in pairs:
        if tuple(pair) in seen:
            out.append(
                _err(
                    "knobs.anomaly_types_json",
                    "lists the same [material, defect] pair twice",
                    pair,
                    rid="A18",
                )
            )
        seen.add(tuple(pair))
    if knobs.get("use_pretrained_checkpoint") is True:
        shipped = [list(p) for p in config["usecase"]["anomaly_types"]]
        unknown = [p for p in pairs if list(p) not in shipped]
        if unknown:
            out.append(
                _err(
                    "knobs.anomaly_types_json",
                    f"the shipped {config['usecase']['key']} checkpoint was not "
                    "trained on these pairs (validate_jsonl.py would fail: TEXTURE+TYPE_C not supported); "
                    "pick from the allowed pairs or finetune first (use_pretrained_checkpoint=false)",
                    unknown,
                    str(shipped),
                    "A19",
                )
            )
    return out


@rule(
    "A20",
    "anomaly materials must be produced by the board's crop (class_dirs): none -> error, some -> notice",
)
def _materials_vs_board(config, explicit):
    knobs, books = config["knobs"], config["cookbooks"]
    pairs = knobs.get("anomaly_types_json")
    crop = (books.get("day0_crop") or books.get("usd2roi_nvpcb") or {}).get("crop")
    if not pairs or not crop or config["flow"]["variant"] not in ("texture", "real_alignment"):
        return []
    produced = sorted(set((crop.get("class_dirs") or {}).values()))
    materials = sorted({p[0] for p in pairs})
    missing = [m for m in materials if m not in produced]
    if missing == materials:
        return [
            _err(
                "knobs.anomaly_types_json",
                f"no pair's material is cropped from board "
                f"'{config['board']['key']}' (its crop.class_dirs give {produced}): the run would "
                "generate no defects",
                materials,
                f"pairs whose material is one of {produced}",
                "A20",
            )
        ]
    if missing:
        # The upstream pod stages only the materials on disk and warns; so do we, at compile time.
        return [
            Diagnostic(
                "notice",
                "knobs.anomaly_types_json",
                f"materials {missing} are not cropped from board "
                f"'{config['board']['key']}' ({produced}); their pairs get no images",
                rule="A20",
            )
        ]
    return []


@rule("A21", "default_spatial_dependency=text needs knobs.roi_prompt")
def _text_mode(config, explicit):
    knobs = config["knobs"]
    mode = knobs.get("default_spatial_dependency")
    if mode == "text" and not knobs.get("roi_prompt"):
        return [
            _err(
                "knobs.roi_prompt",
                "is required when default_spatial_dependency=text (the ROI is found "
                "from this free-text prompt)",
                None,
                'e.g. knobs.roi_prompt="the solder joint"',
                "A21",
            )
        ]
    if mode != "text" and knobs.get("roi_prompt"):
        return [
            _warn(
                "knobs.roi_prompt",
                f"is ignored with default_spatial_dependency={mode}",
                knobs["roi_prompt"],
                rid="A21",
            )
        ]
    return []


_HYGIENE_FIELDS = {
    "trainer.save_iter": "checkpoint.save_iter",
    "trainer.validation_iter": "trainer.validation_iter",
    "trainer.logging_iter": "trainer.logging_iter",
}


@rule(
    "A35 A36 A37", "finetune iteration hygiene of cookbooks.ag_config (save/validation/logging vs max_iter)"
)
def _iterations(config, explicit):
    book = config["cookbooks"].get("ag_config")
    if not book or not finetune_scheduled(config):
        return []
    from dig_stages.finetune import iteration_hygiene

    trainer = dict(book.get("trainer") or {})
    trainer["save_iter"] = (book.get("checkpoint") or {}).get("save_iter")
    out = []
    for severity, message in iteration_hygiene(trainer):
        field = next((f for prefix, f in _HYGIENE_FIELDS.items() if message.startswith(prefix)), "trainer")
        out.append(
            Diagnostic(
                severity,
                f"cookbooks.ag_config.{field}",
                message,
                rule="A35" if severity == "error" else "A36",
            )
        )
    save, val = trainer.get("save_iter"), trainer.get("validation_iter")
    if isinstance(save, int) and isinstance(val, int) and save > 0 and val % save != 0:
        out.append(
            _warn(
                "cookbooks.ag_config.trainer.validation_iter",
                f"({val}) is not a multiple of "
                f"checkpoint.save_iter ({save}): validated steps without a saved checkpoint are skipped "
                "by best-step selection",
                val,
                f"a multiple of {save}",
                "A37",
            )
        )
    return out


@rule("A4", "setup for glass needs knobs.uc3_zip_url_root (the prefix holding mobile_screen.zip)")
def _uc3(config, explicit):
    knobs = config["knobs"]
    if "uc3_zip_url_root" not in knobs:
        return []
    value = knobs["uc3_zip_url_root"]
    if not value:
        root = config["dig_url_root"]
        return [
            _err(
                "knobs.uc3_zip_url_root",
                "is required for setup with usecase=glass: the storage prefix that "
                "holds mobile_screen.zip (upstream defaulted to '' which OSMO rejects)",
                value,
                f"e.g. knobs.uc3_zip_url_root={root}/uploads/glass-zip",
                "A4",
            )
        ]
    if value.rstrip("/").endswith("mobile_screen.zip"):
        return [
            _err(
                "knobs.uc3_zip_url_root",
                "must be the prefix that contains mobile_screen.zip, not the file",
                value,
                value.rstrip("/").rsplit("/", 1)[0],
                "A4",
            )
        ]
    return []


@rule("A29", "pretrained_model_sizes with 14B needs storage_large >= 300Gi")
def _pretrained_storage(config, explicit):
    knobs = config["knobs"]
    if "14B" in str(knobs.get("pretrained_model_sizes", "")).split() and _gib(knobs["storage_large"]) < 300:
        return [
            _err(
                "knobs.storage_large",
                "is too small for the 14B checkpoint (~64 GB more)",
                knobs["storage_large"],
                ">= 300Gi",
                "A29",
            )
        ]
    return []


@rule("A23", "model_size must match the checkpoint (shipped and freshly trained ones are 2B)")
def _model_size(config, explicit):
    knobs = config["knobs"]
    if knobs.get("model_size") == "14b":
        if finetune_scheduled(config):
            return [
                _err(
                    "knobs.model_size",
                    "finetuning trains a 2B model (experiment predict2_anomaly_gen_ddp_2b); "
                    "inference on it needs model_size=2b",
                    "14b",
                    "2b",
                    "A23",
                )
            ]
        return [
            _warn(
                "knobs.model_size",
                "the shipped checkpoints are 2B; 14b only fits a 14B checkpoint you put "
                f"under models/{config['usecase']['key']}",
                "14b",
                "2b",
                "A23",
            )
        ]
    return []


@rule("A25", "Day 1 real-photo alignment: the real photo should be the board's own")
def _real_photo(config, explicit):
    knobs = config["knobs"]
    photo = knobs.get("real_image_filename")
    own = config["board"].get("real_image_filename")
    if photo and own and photo != own:
        return [
            _warn(
                "knobs.real_image_filename",
                f"is not the photo of board '{config['board']['key']}'; "
                "registration (min_mi 0) would align to the wrong board without failing",
                photo,
                own,
                "A25",
            )
        ]
    return []


@rule("A27", "use_usd2roi_day1=false switches real-photo alignment to manual-ROI wiring")
def _usd2roi_flag(config, explicit):
    if config["knobs"].get("use_usd2roi_day1") is False:
        out = [
            _warn(
                "knobs.use_usd2roi_day1",
                "=false drops the alignment render; use flow=day1_manual_roi for manual ROIs instead",
                False,
                "true",
                "A27",
            )
        ]
        # the knobs only the dropped usd2roi-day1 task reads: set, they would change nothing
        out += [
            _warn(
                f"knobs.{k}",
                "has no effect: knobs.use_usd2roi_day1=false drops the usd2roi-day1 task, "
                "the only one that reads it",
                config["knobs"][k],
                "knobs.use_usd2roi_day1=true",
                "A27",
            )
            for k in ("usd2roi_image", "scene_filename", "real_image_filename")
            if k in explicit
        ]
        return out
    return []


@rule("A12", "crop_max_emit equal to the board cookbook's crop.max_emit changes nothing (said, not silent)")
def _crop_max_emit_same(config, explicit):
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


@rule("A14", "structural render_patches=1 may land on an empty cell")
def _structural_patches(config, explicit):
    knobs = config["knobs"]
    if config["flow"]["key"] == "structural" and knobs.get("render_patches") == 1:
        return [
            _warn(
                "knobs.render_patches",
                "=1 can render an empty cell and fail with 0 crops; use >= 2 (3 recommended)",
                1,
                "-1 or >= 2",
                "A14",
            )
        ]
    return []


_SIZING = {
    "train": (lambda g: max(16, 8 * g), lambda g: max(64, 48 * g)),
    "infer": (lambda g: 4 * g, lambda g: max(64, 48 * g)),
}


@rule("A28", "GPU scaling: cpu and memory follow the sizing rule (derived when not given, warned when below)")
def _sizing(config, explicit):
    knobs = config["knobs"]
    out = []
    for prefix, (cpu_rule, mem_rule) in _SIZING.items():
        gpu_key = f"{prefix}_gpu"
        if gpu_key not in knobs:
            continue
        gpus = knobs[gpu_key]
        need_cpu, need_mem = cpu_rule(gpus), mem_rule(gpus)
        for key, need, have, fmt in (
            (f"{prefix}_cpu", need_cpu, knobs[f"{prefix}_cpu"], str),
            (f"{prefix}_memory", need_mem, _gib(knobs[f"{prefix}_memory"]), lambda v: f"{v}Gi"),
        ):
            if have >= need:
                continue
            if key in explicit or gpu_key not in explicit:
                out.append(
                    _warn(
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
                _warn(
                    f"knobs.{key}",
                    "render and image-edit are single-pod stages; extra GPUs sit idle",
                    knobs[key],
                    "1",
                    "A28",
                )
            )
    return out


@rule(
    "A40 A41 A43", "structural render cookbook: explicit component_types list; writer emits `defect` labels"
)
def _defect_image(config, explicit):
    book = config["cookbooks"].get("defect_image")
    if not book:
        return []
    out = []
    types = book.get("component_types")
    if not isinstance(types, list) or not types:
        out.append(
            _err(
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
            _err(
                "cookbooks.defect_image.writer.semantic_types",
                "must include 'defect', or no defect labels are written",
                (book.get("writer") or {}).get("semantic_types"),
                "[defect]",
                "A43",
            )
        )
    return out


@rule("A44", "every crop class must be a label class of the cookbook's semantics rules")
def _crop_classes(config, explicit):
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
                    _err(
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
                    _err(
                        f"cookbooks.{crop_book}.crop.class_dirs",
                        f"has no material directory for class '{cls}'",
                        crop.get("class_dirs"),
                        rid="A44",
                    )
                )
    return out


@rule("A45", "cookbook max_image_count is always replaced by knobs.render_patches")
def _max_image_count(config, explicit):
    out = []
    shipped = {"day0_image": ("__MAX_IMAGE_COUNT__",), "defect_image": (5, -1)}
    for name, values in shipped.items():
        book = config["cookbooks"].get(name)
        if book and book.get("max_image_count") not in values:
            out.append(
                _warn(
                    f"cookbooks.{name}.max_image_count",
                    "has no effect: it is always set from knobs.render_patches",
                    book.get("max_image_count"),
                    "knobs.render_patches",
                    "A45",
                )
            )
    return out


@rule("A24 B18", "image-edit endpoint: a URL is needed; the model id is fixed")
def _endpoint(config, explicit):
    if not calls_endpoint(config):
        return []
    book = (
        (config["cookbooks"].get("augmentation_config_ovsl2sl") or {})
        .get("endpoints", {})
        .get("image_edit", {})
    )
    if book.get("model", MODEL_ID) != MODEL_ID:
        return [
            _err(
                "cookbooks.augmentation_config_ovsl2sl.endpoints.image_edit.model",
                "is fixed: the image-edit "
                "model is always nvidia/Qwen-Image-Edit-NVPCB-OVSL2SL (a substitute silently degrades "
                "labels)",
                book.get("model"),
                MODEL_ID,
                "A24",
            )
        ]
    if book.get("url", "http://localhost:8000/v1") != "http://localhost:8000/v1":
        return [
            _err(
                "cookbooks.augmentation_config_ovsl2sl.endpoints.image_edit.url",
                "is not read: choose the endpoint with endpoint=cluster|external and endpoint.url=",
                book.get("url"),
                "endpoint=external endpoint.url=https://<host>/v1",
                "A24",
            )
        ]
    url = config["endpoint"].get("url")
    if not url:
        return [
            _err(
                "endpoint.url",
                "is required with endpoint=external (the /v1 base URL reachable from the pods)",
                None,
                "endpoint.url=https://<host>/v1, or save it: python -m compiler.prefs set "
                "external_endpoint_url=https://<host>/v1",
                "A24",
            )
        ]
    if not url.rstrip("/").endswith("/v1"):
        return [
            _warn(
                "endpoint.url",
                "does not end with /v1; the client calls <base>/models and <base>/images/edits",
                url,
                "https://<host>/v1",
                "A24",
            )
        ]
    return []


_JINJA = re.compile(r"\{\{|\{%|\{#")
MAX_TEXT = 10_000


def _strings(node: Any, path: str):
    if isinstance(node, str):
        yield path, node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _strings(value, f"{path}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _strings(value, f"{path}[{index}]")


@rule("A30 OSMO", "no value may carry Jinja markers (OSMO renders the spec twice) or be absurdly long")
def _jinja_in_values(config, explicit):
    out = []
    roots = {"knobs": config["knobs"], "cookbooks": config["cookbooks"], "endpoint": config["endpoint"]}
    for root, node in roots.items():
        for path, text in _strings(node, root):
            if _JINJA.search(text):
                out.append(
                    _err(
                        path,
                        "contains a Jinja marker ({{, {% or {#) that OSMO's two renders would "
                        "interpret; rephrase it",
                        text,
                        "text without {{, {% or {#",
                        "A30",
                    )
                )
            elif len(text) > MAX_TEXT:
                out.append(
                    _err(
                        path,
                        f"is {len(text)} characters long",
                        text[:40] + "...",
                        f"at most {MAX_TEXT} characters",
                    )
                )
    return out


@rule("A1", "setup flows take no run name (their outputs are fixed artifact URLs)")
def _setup_name(config, explicit):
    if not takes_run_name(config) and config.get("name"):
        return [
            _warn(
                "name",
                "is ignored: setup flows write fixed artifact URLs under dig_url_root",
                config["name"],
                "(unset)",
                "A1",
            )
        ]
    return []


@rule("A15", "structural on the IC-only board 1152819000 needs every frame (render_patches=-1)")
def _ic_board_patches(config, explicit):
    knobs = config["knobs"]
    if (
        config["flow"]["key"] == "structural"
        and config["board"]["key"] == "1152819000"
        and knobs.get("render_patches") != -1
    ):
        return [
            _warn(
                "knobs.render_patches",
                "on board 1152819000 (a single IC, shift ratio 1.0) a few frames yield too few crops",
                knobs["render_patches"],
                "-1",
                "A15",
            )
        ]
    return []


def check_rules(config: dict[str, Any], *, explicit: set[str]) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    for _ids, _summary, fn in RULES:
        out.extend(fn(config, explicit))
    return out


@rule(
    "A3 A4 A24",
    "storage roots name a bucket their store accepts and no '..' segments; endpoint URLs a real "
    "host and port",
)
def _url_values(config, explicit):
    from compiler.values import endpoint_url_problem, storage_root_problem

    out = []
    for key, value in (
        ("dig_url_root", config.get("dig_url_root")),
        ("knobs.uc3_zip_url_root", config["knobs"].get("uc3_zip_url_root")),
    ):
        problem = isinstance(value, str) and storage_root_problem(value)
        if problem:
            out.append(
                _err(
                    key,
                    problem,
                    value,
                    "an OSMO storage prefix such as s3://my-bucket/dig",
                    "A3" if key == "dig_url_root" else "A4",
                )
            )
    url = config["endpoint"].get("url")
    problem = isinstance(url, str) and endpoint_url_problem(url)
    if problem:
        out.append(_err("endpoint.url", problem, url, "http(s)://<host>[:<port 1-65535>]/v1", "A24"))
    return out
