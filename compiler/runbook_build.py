"""The run-book of a compile (what `dig plan` prints), as data: workflow, preflights, artifacts, submit,
group order, outputs, notes. Read from the compiled request and its planned tasks; nothing is planned again."""

from __future__ import annotations

import json
import shlex
from typing import Any

from compiler.flows import calls_endpoint, final_stage, run_name, submit_command, takes_run_name
from compiler.pipeline import Compiled
from compiler.render import resources
from compiler.rules import finetune_scheduled
from compiler.runbook_notes import notes
from compiler.task import NAME_TOKEN, Task

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
RENDER_STEPS = ("render-day0", "render-structural", "render-day1")  # Kit tasks: nvoptix + /dev/shm
# Structural yield on the spark board (endpoint_and_sizing.md §8): render_patches -> ≈ total crops.

# What each stage directory holds (storage_layout.md §5); each variant's final one is in conf/flow/.
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


def q(value: Any) -> str:
    return shlex.quote(str(value))


def show(value: Any) -> Any:
    """Knob values as a user would type them: '' stays visible, None is null."""
    if value == "":
        return "''"
    return "null" if value is None else value


def build_runbook(compiled: Compiled, file: str, images: int | None = None) -> dict[str, Any]:
    """The run-book's sections (keys of SECTIONS) for the compiled file written at `file`."""
    config, tasks = compiled.config, compiled.tasks
    return {
        "compile_key": compiled.key,
        "workflow": _workflow(compiled, file),
        "preflights": _preflights(config, tasks, file),
        "required_url_artifacts": _artifacts(compiled),
        "submit_command": _submit(config, file),
        "group_order": _group_order(tasks),
        "output_location": _outputs(config, tasks),
        "notes": notes(compiled, images),
    }


# -- Workflow --------------------------------------------------------------------------------------
def _checkpoint_mode(c: dict[str, Any]) -> str:
    if c["flow"]["key"] == "finetune":
        return "finetune only (no inference)"
    if finetune_scheduled(c):
        return "finetune first (finetune-job trains; inference picks the best validated step)"
    return f"pretrained (shipped checkpoint in models/{c['usecase']['key']})"


SHOWN_KNOBS = (
    "render_patches",
    "crop_max_emit",
    "defect_modes",
    "num_sdg",
    "default_spatial_dependency",
    "model_size",
    "pretrained_model_sizes",
    "uc3_zip_url_root",
)


def _values(c: dict[str, Any]) -> list[dict[str, Any]]:
    """The values that decide what this run does, as the Workflow section lists them."""
    k = c["knobs"]
    values: list[dict[str, Any]] = [{"name": "use case", "value": c["usecase"]["key"]}]
    if c["flow"]["uses_board"]:
        values.append({"name": "board", "value": c["board"]["key"]})
    if "real_image_filename" in k and k.get("use_usd2roi_day1"):
        values.append({"name": "real photo", "value": k["real_image_filename"]})
    if "use_pretrained_checkpoint" in k or c["flow"]["key"] == "finetune":
        values.append({"name": "checkpoint", "value": _checkpoint_mode(c)})
    if "checkpoint_step" in k:
        values.append({"name": "checkpoint step", "value": k["checkpoint_step"]})
    if "anomaly_types_json" in k:
        values.append(
            {"name": "anomaly types", "value": json.dumps(k["anomaly_types_json"], allow_nan=False)}
        )
    values += [{"name": name, "value": show(k[name])} for name in SHOWN_KNOBS if name in k]
    if calls_endpoint(c):
        values.append(
            {"name": "image-edit endpoint", "value": f"{c['endpoint']['key']}: {c['endpoint']['url']}"}
        )
    values.append({"name": "storage root", "value": c["dig_url_root"]})
    values.append({"name": "run name", "value": run_name(c) or "(none: setup writes fixed URLs)"})
    return values


def _workflow(compiled: Compiled, file: str) -> dict[str, Any]:
    c, k = compiled.config, compiled.config["knobs"]
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
        "values": _values(c),
        "resources": sizes,
        "timeouts": {"exec_timeout": k["exec_timeout"], "queue_timeout": k["queue_timeout"]},
    }


# -- Preflights ------------------------------------------------------------------------------------
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
    # The storage check reads the compiled file itself: the artifacts below are what it checks.
    # No --name with a fresh stamp: runs/<flow>-$STAMP/ is free by construction.
    out.append(
        {
            "args": ["workflow", file],
            "why": "every storage artifact below, the output run and the credentials of the compiled file "
            "(before every submit)",
        }
    )
    for item in out:
        item["command"] = "python -m dig_preflight " + " ".join(q(a) for a in item["args"])
    return out


# -- Required URL artifacts ------------------------------------------------------------------------
def _artifacts(compiled: Compiled) -> list[dict[str, Any]]:
    """The compiled file's storage requirements, from the function dig-preflight checks them with."""
    import yaml
    from dig_preflight.requirements import requirements

    root = compiled.config["dig_url_root"]
    out = []
    for req in requirements(yaml.load(compiled.text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))):
        rel = req.url[len(root) + 1 :] if req.url.startswith(root + "/") else req.url
        role = (
            "must NOT exist yet (a re-used name overwrites the earlier run)"
            if req.kind == "run_absent"
            else req.role.split(" (", 1)[0]
        )
        out.append(
            {
                "url": req.url,
                "path": rel,
                "read_by": list(req.read_by),
                "role": role,
                "contains": [] if req.kind == "run_absent" else req.contains(),
            }
        )
    return out


# -- Submit ----------------------------------------------------------------------------------------
def _submit(config: dict[str, Any], file: str) -> dict[str, Any]:
    cmd = submit_command(config, q(file), pool=q(config["pool"]) if config["pool"] else None)
    lines: list[str] = []
    if not takes_run_name(config):
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
        ups = [i["task"] for i in t.inputs.values() if "task" in i]
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
    root, name, final = config["dig_url_root"], run_name(config), final_stage(config)
    stages = []
    for t in tasks:
        url = t.output.replace(NAME_TOKEN, name) if name else t.output
        stage = url.rsplit("/", 1)[-1]
        stages.append({"task": t.name, "url": url + "/", "holds": STAGE_CONTENTS.get(stage, t.summary)})
    result: dict[str, Any] = {"run_root": f"{root}/runs/{name}/" if name else None, "stages": stages}
    if final:
        stage, inner = final
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
