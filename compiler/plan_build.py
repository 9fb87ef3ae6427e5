"""A compiled request -> the structured plan: workflow, preflights, artifacts, submit, DAG, outputs, notes."""

from __future__ import annotations

import json
import shlex
from typing import Any

from compiler.model import NAME_TOKEN, Task, plan_tasks, resources
from compiler.pipeline import Compiled
from compiler.rules import finetune_scheduled

SECTIONS = {
    "workflow": "Workflow",
    "preflights": "Preflights",
    "required_url_artifacts": "Required URL Artifacts",
    "submit_command": "Submit Command",
    "group_order": "Group Order",
    "output_location": "Output Location",
    "notes": "Notes",
}
STAMP_LINE = "STAMP=$(cut -c1-8 /proc/sys/kernel/random/uuid)"
SETUP_FLOWS = ("setup", "setup_pretrained")
RENDER_STEPS = ("render-day0", "render-structural", "render-day1")  # Kit tasks: nvoptix + /dev/shm
IMAGE_EDIT_VARIANTS = ("texture", "good", "structural")
PREFLIGHT_DEFAULT_SCENE = "spark_lighting.usd"  # dig_preflight's --scene-filename default
# Structural yield on the spark board (endpoint_and_sizing.md §8): render_patches -> ≈ total crops.

# What each stage directory holds (storage_layout.md §5); the final one of each flow is marked in FINAL.
STAGE_CONTENTS = {
    "usd2roi-components": "scan-grid renders `trigger_0000/` + clean ROI crops "
    "`crop/<MATERIAL>/<x*_y*>/{normal_img,cad_mask}/` + labels JSON",
    "augment": "restyled crops `crop/<MATERIAL>/<x*_y*>/<NNNN>.jpg` (same stems as `normal_img/`)",
    "structural_defect": "pose-defect renders `trigger_0000/` + `cropped/<mode>/{rgb,semantic_segmentation,"
    "component_instance}/<NNNN>.png`",
    "structural_defect_edited": "restyled structural crops `<mode>/rgb/<NNNN>.jpg`",
    "usd2roi-day1": "aligned per-ROI crops `crop/<MATERIAL>/{normal_img,cad_mask}/`, `aligned/params.json`",
    "finetune": "trainer tree `results/anomaly_gen/<name>/<job>/` with `ag_config.yaml` and "
    "`checkpoints/model/iter_<9-digit>.pt` (only `checkpoints/model/` holds weights)",
    "anomaly": "labelled anomalies `inference/{reconstructed_image,annotated_image,cropped_image,cropped_mask,"
    "original_image,original_mask}/` + `inference/SDG_result.csv`",
}
FINAL = {
    "texture": ("anomaly", "inference/reconstructed_image/"),
    "real_alignment": ("anomaly", "inference/reconstructed_image/"),
    "manual_roi": ("anomaly", "inference/reconstructed_image/"),
    "good": ("augment", "crop/"),
    "structural": ("structural_defect_edited", "<mode>/rgb/"),
    "finetune": ("finetune", "results/anomaly_gen/"),
}


def q(value: Any) -> str:
    return shlex.quote(str(value))


def show(value: Any) -> Any:
    """Knob values as a user would type them: '' stays visible, None is null."""
    if value == "":
        return "''"
    return "null" if value is None else value


def run_name(config: dict[str, Any]) -> str | None:
    """The run name the plan talks about: the compiled one, `<flow>-$STAMP`, or None for setup flows."""
    if config["flow"]["key"] in SETUP_FLOWS:
        return None
    return config["name"] or f"{config['flow']['key']}-$STAMP"


def build_plan(compiled: Compiled, file: str, images: int | None = None) -> dict[str, Any]:
    config = compiled.config
    tasks = plan_tasks(config)
    return {
        "compile_key": compiled.key,
        "workflow": _workflow(compiled, file),
        "preflights": _preflights(config, tasks, file),
        "required_url_artifacts": _artifacts(config, tasks),
        "submit_command": _submit(config, file),
        "group_order": _group_order(tasks),
        "output_location": _outputs(config, tasks),
        "notes": _notes(compiled, tasks, images),
    }


# -- Workflow --------------------------------------------------------------------------------------
def _workflow(compiled: Compiled, file: str) -> dict[str, Any]:
    c, k = compiled.config, compiled.config["knobs"]
    values: list[dict[str, Any]] = [{"name": "use case", "value": c["usecase"]["key"]}]
    if c["flow"]["uses_board"]:
        values.append({"name": "board", "value": c["board"]["key"]})
    if "real_image_filename" in k and k.get("use_usd2roi_day1"):
        values.append({"name": "real photo", "value": k["real_image_filename"]})
    if "use_pretrained_checkpoint" in k or c["flow"]["key"] == "finetune":
        mode = (
            "finetune first (finetune-job trains; inference picks the best validated step)"
            if finetune_scheduled(c)
            else f"pretrained (shipped checkpoint in models/{c['usecase']['key']})"
        )
        if c["flow"]["key"] == "finetune":
            mode = "finetune only (no inference)"
        values.append({"name": "checkpoint", "value": mode})
    if "checkpoint_step" in k:
        values.append({"name": "checkpoint step", "value": k["checkpoint_step"]})
    if "anomaly_types_json" in k:
        values.append({"name": "anomaly types", "value": json.dumps(k["anomaly_types_json"])})
    for name in (
        "render_patches",
        "crop_max_emit",
        "defect_modes",
        "num_sdg",
        "default_spatial_dependency",
        "model_size",
        "pretrained_model_sizes",
        "uc3_zip_url_root",
    ):
        if name in k:
            values.append({"name": name, "value": show(k[name])})
    if c["flow"]["variant"] in IMAGE_EDIT_VARIANTS:
        values.append(
            {"name": "image-edit endpoint", "value": f"{c['endpoint']['key']}: {c['endpoint']['url']}"}
        )
    values.append({"name": "storage root", "value": c["dig_url_root"]})
    values.append({"name": "run name", "value": run_name(c) or "(none: setup writes fixed URLs)"})
    sizes = {
        cls: ", ".join(f"{key} {val}" for key, val in spec.items()) for cls, spec in resources(c).items()
    }
    return {
        "flow": c["flow"]["key"],
        "variant": c["flow"]["variant"],
        "title": c["flow"]["title"],
        "workflow_name": k["workflow_name"],
        "file": file,
        "choices": compiled.choices,
        "values": values,
        "resources": sizes,
        "timeouts": {"exec_timeout": k["exec_timeout"], "queue_timeout": k["queue_timeout"]},
    }


# -- Preflights ------------------------------------------------------------------------------------
def urls_args(config: dict[str, Any]) -> list[str]:
    """The `dig_preflight urls` arguments for this request (flags as in dig_preflight/cli.py)."""
    c, k = config, config["knobs"]
    args = ["urls", "--flow", c["flow"]["key"], "--usecase", c["usecase"]["key"], "--root", c["dig_url_root"]]
    if "checkpoint_step" in k:
        args += ["--checkpoint-step", str(k["checkpoint_step"])]
    if "use_pretrained_checkpoint" in k:
        args.append(
            "--use-pretrained-checkpoint"
            if k["use_pretrained_checkpoint"]
            else "--no-use-pretrained-checkpoint"
        )
    if "anomaly_types_json" in k:
        args += ["--anomaly-types", json.dumps(k["anomaly_types_json"], separators=(",", ":"))]
    if c["flow"]["uses_board"]:
        args += ["--board", c["board"]["key"]]
    if k.get("scene_filename", PREFLIGHT_DEFAULT_SCENE) != PREFLIGHT_DEFAULT_SCENE:
        args += ["--scene-filename", k["scene_filename"]]
    if k.get("use_usd2roi_day1") and k.get("real_image_filename"):
        args += ["--real-image-filename", k["real_image_filename"]]
    if k.get("uc3_zip_url_root"):
        args += ["--zip-root", k["uc3_zip_url_root"].rstrip("/")]
    if c["name"] and c["flow"]["key"] not in SETUP_FLOWS:
        args += ["--name", c["name"]]
    return args


def _preflights(config: dict[str, Any], tasks: list[Task], file: str) -> list[dict[str, Any]]:
    out = [{"args": ["credentials"], "why": "HF token + OSMO credential `hf-token` (once per login)"}]
    kit = [t.name for t in tasks if t.step in RENDER_STEPS]
    train = [t.name for t in tasks if t.step == "finetune"]
    if kit or train:
        parts = []
        if kit:
            parts.append(f"nvoptix hostPath for the Kit render ({', '.join(kit)})")
        parts.append(f"/dev/shm >= 16 GiB ({', '.join(kit + train)})")
        args = ["pod-template"] if kit else ["pod-template", "--checks", "train"]
        out.append({"args": args, "why": " and ".join(parts) + " (once per login)"})
    if any("url" in i for t in tasks for i in t.inputs):  # setup pcb/metal and pretrained read nothing
        out.append(
            {"args": urls_args(config), "why": "every storage artifact this run reads (before every submit)"}
        )
    # No --name with a fresh stamp: runs/<flow>-$STAMP/ is free by construction.
    out.append(
        {"args": ["workflow", file], "why": "every URL input, output run and credential of the compiled file"}
    )
    for item in out:
        item["command"] = "python -m dig_preflight " + " ".join(q(a) for a in item["args"])
    return out


# -- Required URL artifacts ------------------------------------------------------------------------
def _artifacts(config: dict[str, Any], tasks: list[Task]) -> list[dict[str, Any]]:
    root, k = config["dig_url_root"], config["knobs"]
    found: dict[str, dict[str, Any]] = {}
    for task in tasks:
        for inp in task.inputs:
            if "url" in inp:
                entry = found.setdefault(inp["url"], {"url": inp["url"], "read_by": [], "contains": []})
                entry["read_by"].append(task.name)
    for url, entry in found.items():
        rel = url[len(root) + 1 :] if url.startswith(root + "/") else url
        entry["path"] = rel
        parts = rel.split("/")
        if rel == "models/pretrained":
            entry["role"] = "pretrained models (setup_pretrained)"
            entry["contains"] = ["pretrained/ (the tree is one level down: models/pretrained/pretrained/)"]
        elif parts[0] == "models" and len(parts) == 2:
            step = k.get("checkpoint_step", config["usecase"]["checkpoint_step"])
            entry["role"] = f"{parts[1]} checkpoint (setup {parts[1]} or your upload)"
            entry["contains"] = ["ag_config.yaml", f"iter_{int(step):09d}.pt"]
        elif parts[0] == "datasets" and parts[-1] == "raw":
            pairs = k.get("anomaly_types_json") or config["usecase"].get("anomaly_types") or []
            entry["role"] = f"{parts[1]} raw dataset"
            entry["contains"] = ["defect_spec.jsonl (at the root)"] + [
                f"{m}/mask/{d}/ (non-empty)" for m, d in pairs
            ]
            if any(t.step == "finetune" for t in tasks):
                entry["contains"] += [f"{m}/anomaly_image/{d}/ (training)" for m, d in pairs]
        elif rel == "datasets/pcb/assets":
            entry["role"] = "PCBA USD assets (setup pcb)"
            entry["contains"] = [
                f"{k.get('scene_filename', PREFLIGHT_DEFAULT_SCENE)} and the trees it references "
                "(materials/, component/, ECAD_3D/, PCBA/, sublayers)"
            ]
            if k.get("use_usd2roi_day1") and k.get("real_image_filename"):
                entry["contains"].append(f"{k['real_image_filename']} (the board's real photo)")
        elif k.get("uc3_zip_url_root") and url == k["uc3_zip_url_root"].rstrip("/"):
            entry["role"] = "glass Roboflow export (your upload)"
            entry["contains"] = ["mobile_screen.zip (a regular file, not a mobile_screen.zip/ folder)"]
        else:
            entry["role"] = "URL input"
    out = list(found.values())
    name = config["name"]
    if name and config["flow"]["key"] not in SETUP_FLOWS:
        out.append(
            {
                "url": f"{root}/runs/{name}",
                "path": f"runs/{name}",
                "read_by": [],
                "role": "must NOT exist yet (a re-used name overwrites the earlier run)",
                "contains": [],
            }
        )
    return out


# -- Submit ----------------------------------------------------------------------------------------
def _submit(config: dict[str, Any], file: str) -> dict[str, Any]:
    pool = config["pool"] or "<pool>"
    flow = config["flow"]["key"]
    cmd = f"osmo workflow submit {q(file)} --pool {q(pool) if config['pool'] else pool}"
    lines: list[str] = []
    if flow in SETUP_FLOWS:
        note = (
            "Setup flows have no run name: outputs are fixed URLs under the storage root, so no "
            "`--set name`. Every other value is already compiled in."
        )
    elif config["name"]:
        note = (
            f"The run name `{config['name']}` is compiled in, so no `--set name`; use a new name for every "
            "submit. Every other value is already compiled in."
        )
    else:
        lines.append(STAMP_LINE)
        cmd += f" --set name={flow}-$STAMP"
        note = (
            "Generate a fresh STAMP for every submit (never reuse: runs/<name>/ would be overwritten). "
            "The run name is the only submit-time value; every other value is already compiled in."
        )
    if not config["pool"]:
        note += (
            " Replace `<pool>` with your OSMO pool (or save it: `python -m compiler.prefs set pool=<pool>`)."
        )
    lines.append(cmd)
    return {"lines": lines, "pool": config["pool"], "note": note}


# -- Group order -----------------------------------------------------------------------------------
def _group_order(tasks: list[Task]) -> dict[str, Any]:
    by_task = {t.name: t for t in tasks}
    lines, edges = [], []
    for t in tasks:
        ups = [i["task"] for i in t.inputs if "task" in i]
        edges += [[u, t.name] for u in ups]
        up_text = ", ".join(ups) if ups else "(no upstream: URL inputs only)" if t.inputs else "(no upstream)"
        lines.append(f"{t.group} ({t.name}) <- {up_text}")
    mermaid = ["flowchart LR"]
    ids = {t.name: f"t{i}" for i, t in enumerate(tasks)}
    for t in tasks:
        mermaid.append(f'    {ids[t.name]}["{t.group}<br/>{t.name}"]')
    for up, down in edges:
        if up in by_task:
            mermaid.append(f"    {ids[up]} --> {ids[down]}")
    return {"lines": lines, "edges": edges, "mermaid": "\n".join(mermaid)}


# -- Output location -------------------------------------------------------------------------------
def _outputs(config: dict[str, Any], tasks: list[Task]) -> dict[str, Any]:
    root, name, variant = config["dig_url_root"], run_name(config), config["flow"]["variant"]
    stages = []
    for t in tasks:
        url = t.output.replace(NAME_TOKEN, name) if name else t.output
        stage = url.rsplit("/", 1)[-1]
        stages.append({"task": t.name, "url": url + "/", "holds": STAGE_CONTENTS.get(stage, t.summary)})
    result: dict[str, Any] = {"run_root": f"{root}/runs/{name}/" if name else None, "stages": stages}
    if variant in FINAL:
        stage, inner = FINAL[variant]
        result["final"] = f"{root}/runs/{name}/{stage}/{inner}"
        result["download"] = f"osmo data download {root}/runs/{name}/{stage} ./output/{name}/"
    else:
        result["final"] = "the fixed URLs above (read by later flows)"
    if finetune_scheduled(config):
        uc = config["usecase"]["key"]
        result["reuse"] = (
            f"The checkpoint is `ag_config.yaml` + `checkpoints/model/iter_<9-digit>.pt` under "
            f"{root}/runs/{name}/finetune/results/anomaly_gen/ (never the optim/scheduler/trainer "
            f"iters). Compiled flows read checkpoints from {root}/models/{uc}/ (no knob points them at "
            "a run), so to reuse it copy those two files flat into models/<usecase>/ (or a custom "
            "use case's) and compile with knobs.checkpoint_step=<step>; inference also accepts the "
            f"trainer layout if an input is pointed at runs/{name}/finetune by hand."
        )
    return result


# -- Notes -----------------------------------------------------------------------------------------
def _notes(compiled: Compiled, tasks: list[Task], images: int | None) -> list[str]:
    c, k, variant = compiled.config, compiled.config["knobs"], compiled.config["flow"]["variant"]
    notes = [f"{d.severity}: {d.key}: {d.message}" for d in compiled.diagnostics]
    if variant == "structural":
        calib = c["board"].get("structural_yield")
        table = ", ".join(f"{p}→~{n}" for p, n in calib or [])
        notes.append(
            "`crop_max_emit` does not exist on structural: it is sized by `render_patches` "
            f"(now {k['render_patches']})"
            + (f". Yield on board {c['board']['key']} (render_patches→≈crops): {table}; below "
               f"~{calib[0][1]} narrow `defect_modes` (each disabled mode removes ~33%); `--images N` "
               "picks the patches." if calib else "; this board has no yield calibration.")
        )
        if c["board"]["key"] == "1152819000":
            notes.append("Board 1152819000 is IC-only (shift mode): use render_patches=-1.")
        elif k["render_patches"] == 1:
            notes.append("render_patches=1 may render an empty cell (0 crops): prefer ≥ 3.")
    if variant in ("texture", "good", "structural"):
        notes.append(
            "Missing components are made by Day 0 texture defects (AnomalyGen "
            "`passive_component+missing`), not by structural (pose: shift/tombstone/sideflip)."
        )
    if variant in ("texture", "good"):
        notes.append(
            "`crop_max_emit` caps crops per material per scan cell: '' keeps the cookbook cap, null "
            'removes it, N caps at N. "N images" means crop_max_emit=N, never render_patches.'
        )
    if variant in IMAGE_EDIT_VARIANTS:
        notes.append(
            f"Check the image-edit endpoint is Ready before submit ({c['endpoint']['url']}/models must "
            "list nvidia/Qwen-Image-Edit-NVPCB-OVSL2SL); otherwise the render finishes and image-edit "
            "fails."
        )
    if variant == "real_alignment":
        notes.append(
            "Day 1 on pcb defaults to real-photo alignment (render + MI registration to "
            f"{k.get('real_image_filename')}); for your own crops use flow=day1_manual_roi. Changing "
            "board= changes the photo with it; a custom photo must match the board."
        )
    if finetune_scheduled(c) and c["flow"]["key"] != "finetune":
        notes.append(
            "finetune-job has no upstream edge (URL inputs only) and starts at once; inference waits for "
            "it and picks the best validated step (checkpoint_step is only the fallback)."
        )
    if c["flow"]["key"] in SETUP_FLOWS:
        notes.append(
            "Setup writes fixed URLs under the storage root; re-running overwrites them. Re-submit only "
            "the setup that failed."
        )
    if variant == "setup_glass":
        notes.append("Upload mobile_screen.zip as a regular file under uc3_zip_url_root before submitting.")
    if variant == "setup_pretrained" and "14B" in str(k.get("pretrained_model_sizes", "")):
        notes.append("Model sizes include 14B: storage_large must be ≥ 300Gi.")
    if run_name(c) and not c["name"]:
        notes.append(
            "Never reuse a run name: runs/<name>/ would be overwritten (exception: a good_image + "
            "structural pair for ChangeNet shares one name on purpose)."
        )
    if images is not None:
        notes.append(_images_note(c, images))
    return notes


def _images_note(config: dict[str, Any], images: int) -> str:
    from compiler.sizing import SizingError, rule_for

    try:
        return rule_for(config, images).report().replace("\n    ", "; ")
    except SizingError as exc:
        return f"--images {images}: {exc}"
