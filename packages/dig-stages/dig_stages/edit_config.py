"""Image-edit step configuration: the one acceptable model, defaults, the declared spec keys and `ClientConfig`."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from dig_stages import _common, batch

REQUIRED_MODEL = "nvidia/Qwen-Image-Edit-NVPCB-OVSL2SL"
DEFAULT_ENDPOINT = "http://localhost:8000/v1"  # the cookbook placeholder; the compiler writes the knob value
# cookbooks.md §2 (captioning.llm.text and augmentation.parameters)
DEFAULT_PROMPT = (
    "Render this PCB component crop in the style of an NVPCB raked-solder-light photograph: dark reddish "
    "board with bright orange-red and blue specular highlights on the solder pads, photorealistic textures."
)
DEFAULT_GENERATION: dict[str, Any] = {"num_inference_steps": 30, "guidance_scale": 4.0, "seed": 0}
DEFAULT_ALIGN_PARAMS: dict[str, Any] = {
    "rot_range_deg": [-1.0, 1.0, 0.1],
    "shift_step": 2,
    "bins": 64,
    "interp": "bilinear",
    "no_resize": True,
}
ROUTES = ("images", "chat")

Option = _common.Option
# The one declaration of the cookbook block `data_processing.alignment` (align.AlignParams' keys and
# meanings): the pod checks it before any request, the compiler checks the cookbook against it.
ALIGNMENT_OPTIONS = {
    "rot_range_deg": Option("json", length=3, item="float"),  # [min, max, step] in degrees
    "shift_step": Option("float", minimum=0),
    "bins": Option("int", minimum=2),
    "interp": Option("str", choices=("bilinear", "nearest")),
    "no_resize": Option("bool"),
    "sx_range": Option("json", length=3, item="float"),
    "sy_range": Option("json", length=3, item="float"),
    "shift_range": Option("float", minimum=0),
    "pyr_levels": Option("int", minimum=1),
    "min_mi": Option("float"),
    "samples": Option("int", minimum=1),
    "seed": Option("int", minimum=0),
}
# The one declaration of the step's spec keys (docs/stage-contract.md, step image-edit).
OPTIONS = {
    "image-edit": _common.options(
        {
            "input_dir": Option("path", required=True),
            "output_dir": Option("path", required=True),
            "layout": Option("str", required=True, choices=batch.LAYOUTS),
            "endpoint": Option("str"),
            "model": Option("str", choices=(REQUIRED_MODEL,)),
            "prompt": Option("str"),
            "generation": Option("json"),
            "route": Option("str", choices=ROUTES),
            "output_format": Option("str"),
            "output_ext": Option("str"),
            "side_dir": Option("path"),
            "concurrency": Option("int", minimum=1),
            "timeout_s": Option("float", minimum=0),
            "max_retries": Option("int", minimum=0),
            "backoff_base_s": Option("float", minimum=0),
            "backoff_max_s": Option("float", minimum=0),
            "align": Option("bool"),
            "align_params": Option("json"),
            "jpeg_quality": Option("int", minimum=1, maximum=100),
        }
    )
}


def option_problems(spec: dict[str, Any]) -> list[str]:
    """What the pod refuses in an image-edit spec, including its `align_params` block (one line each)."""
    _opts, problems = _common.parse_options(OPTIONS["image-edit"], spec)
    block = spec.get("align_params")
    if isinstance(block, dict):
        decl = {k: v for k, v in ALIGNMENT_OPTIONS.items() if k in block}  # absent keys take align's defaults
        problems += [(f"align_params.{k}", *rest) for k, *rest in _common.parse_options(decl, block)[1]]
    elif block is not None:
        problems.append(("align_params", block, "must be a mapping", "the data_processing.alignment block"))
    return [f"option '{k}' {reason}, got {v!r} (allowed: {allowed})" for k, v, reason, allowed in problems]


@dataclass
class ClientConfig:
    """Everything one run needs; `from_spec` reads the task spec keys of docs/stage-contract.md."""

    endpoint: str = DEFAULT_ENDPOINT
    model: str = REQUIRED_MODEL
    prompt: str = DEFAULT_PROMPT
    generation: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_GENERATION))
    route: str = "images"
    output_format: str = "png"  # what we ask the server for: lossless, we re-encode after alignment
    concurrency: int = 4
    timeout_s: float = 300.0
    max_retries: int = 3
    backoff_base_s: float = 1.0
    backoff_max_s: float = 60.0
    align: bool = True
    align_params: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_ALIGN_PARAMS))
    jpeg_quality: int = 95
    token: str | None = field(default=None, repr=False)

    @classmethod
    def from_spec(cls, spec: dict[str, Any], env: dict[str, str] | None = None) -> ClientConfig:
        """Spec values, then env `IMAGE_EDIT_ENDPOINT` / `IMAGE_EDIT_MODEL` when non-empty, `HF_TOKEN` as bearer."""
        env = dict(os.environ if env is None else env)
        cfg = cls()
        for k in (
            "endpoint",
            "model",
            "prompt",
            "route",
            "output_format",
            "concurrency",
            "timeout_s",
            "max_retries",
            "backoff_base_s",
            "backoff_max_s",
            "align",
            "jpeg_quality",
        ):
            if spec.get(k) is not None:
                setattr(cfg, k, spec[k])
        if spec.get("generation") is not None:
            cfg.generation = dict(spec["generation"])
        if spec.get("align_params") is not None:
            cfg.align_params = dict(spec["align_params"])
        # upstream build_batch_config.py: stripped env values win only when non-empty
        if env.get("IMAGE_EDIT_ENDPOINT", "").strip():
            cfg.endpoint = env["IMAGE_EDIT_ENDPOINT"].strip()
        if env.get("IMAGE_EDIT_MODEL", "").strip():
            cfg.model = env["IMAGE_EDIT_MODEL"].strip()
        cfg.token = env.get("HF_TOKEN", "").strip() or None
        cfg.concurrency = max(1, int(cfg.concurrency))
        cfg.max_retries = max(0, int(cfg.max_retries))
        cfg.timeout_s = float(cfg.timeout_s)
        if cfg.route not in ROUTES:
            raise ValueError(f"route '{cfg.route}' is unknown; use one of {', '.join(ROUTES)}")
        return cfg
