"""Compiler output and dig_stages agree end to end: every distinct compiled task runs its step in a fake pod.

For each distinct (step, task files, task inputs) in workflows_generated/<flow>/<key>.yaml (the submit-ready
bytes; golden/ holds module hashes only) the task's `files:` are
materialised under a temporary pod root (`/tmp/...` -> `<root>/tmp/...`, in the spec, the cookbooks and the
launcher alike), OSMO's tokens are substituted in every file as OSMO does at submit time (`{{input:N}}` ->
a folder holding a minimal valid tree of what that input is, `{{output}}` -> an empty folder, `{{ name }}`
-> a run name), the package tests' fake container tools are added to the spec, and the compiled launcher
itself is run with bash. Its `python3` / `uv run python` resolve to shims running `python -S`, so only the
injected modules under `<root>/tmp/dig` (plus third-party site-packages) are importable: the editable
install of dig_stages cannot silently fill in a module the compiler forgot to inject.

A second check runs each distinct spec through the step's own option loading with a dict that records
which keys the step reads (load_options ignores unknown keys, so that is the only honest test): every key
the compiler writes must be read.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import sysconfig
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
GENERATED = REPO / "workflows_generated"
STAGES_TESTS = REPO / "packages" / "dig-stages" / "tests"
CONTRACT_DOC = REPO / "docs" / "stage-contract.md"

POD_DIR = "/tmp/dig"
MODULE_PREFIX = POD_DIR + "/dig_stages/"
SPEC_PATH = POD_DIR + "/spec.json"
RUN_NAME = "dig-e2e-run"
TOKEN = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
INPUT_TOKEN = re.compile(r"\{\{input:(\d+)\}\}")
TMP_PREFIX = re.compile(r"(?<![\w.~-])/tmp(?=/)")
LAUNCH = re.compile(r"^exec (python3|uv run python) -m dig_stages (\S+) --spec (\S+)$", re.M)


def _load_stage_conftest():
    """The dig-stages tests' fake container tools (StagesPod), loaded under a private module name."""
    spec = importlib.util.spec_from_file_location("_dig_stages_e2e_fakes", STAGES_TESTS / "conftest.py")
    mod = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(mod)
    return mod


FAKES = _load_stage_conftest()

# setup-data for metal_surface calls prepare_dataset_uc2, which the shared fakes do not provide.
_UC2_FAKE = """
record("uc2"); out = Path(sys.argv[1])
png(out / "metal_surface" / "mask" / "MT_Crack" / "0.png")
png(out / "metal_surface" / "clean_image" / "0.png")
(out / "defect_spec.jsonl").write_text("{}\\n"); (out / ".gitattributes").write_text("x")
"""


# ---------------------------------------------------------------------------------------------
# the distinct compiled tasks


@dataclass(frozen=True)
class Case:
    step: str
    where: tuple[str, ...]  # "<flow>/<key>.yaml:<task>" of every task with exactly these files and inputs
    files: tuple[tuple[str, str], ...]
    inputs: tuple[str, ...]  # "task:<name>" or "url:<url>"
    command: tuple[str, ...]
    args: tuple[str, ...]

    @property
    def id(self) -> str:
        return f"{self.step}:{self.where[0]}"

    @property
    def file_map(self) -> dict[str, str]:
        return dict(self.files)

    @property
    def launcher(self) -> str:
        found = [p for p, c in self.files if not p.startswith(MODULE_PREFIX) and LAUNCH.search(c)]
        assert len(found) == 1, f"{self.id}: expected one launcher, found {found}"
        return found[0]

    @property
    def raw_spec(self) -> dict[str, Any]:
        return json.loads(self.file_map[SPEC_PATH])


def _input_ref(item: dict[str, Any]) -> str:
    if "task" in item:
        return "task:" + item["task"]
    return "url:" + item["url"]


def _collect() -> tuple[list[Case], int]:
    """The distinct launcher-running tasks of every golden, and how many tasks the goldens hold in all."""
    cases: dict[tuple, Case] = {}
    n_tasks = 0
    for path in sorted(GENERATED.glob("*/*.yaml")):
        doc = yaml.load(path.read_text(encoding="utf-8"), Loader=yaml.CSafeLoader)
        for group in doc["workflow"]["groups"]:
            for task in group["tasks"]:
                n_tasks += 1
                files = tuple((f["path"], f.get("contents") or "") for f in task.get("files") or [])
                launch = [m for p, c in files if not p.startswith(MODULE_PREFIX) for m in LAUNCH.finditer(c)]
                if not launch:
                    continue
                inputs = tuple(_input_ref(i) for i in task.get("inputs") or [])
                key = (launch[0].group(2), files, inputs)
                where = f"{path.parent.name}/{path.name}:{task['name']}"
                if key in cases:
                    old = cases[key]
                    cases[key] = Case(old.step, old.where + (where,), files, inputs, old.command, old.args)
                else:
                    cases[key] = Case(
                        key[0],
                        (where,),
                        files,
                        inputs,
                        tuple(task.get("command") or ()),
                        tuple(task.get("args") or ()),
                    )
    return sorted(cases.values(), key=lambda c: c.id), n_tasks


CASES, N_TASKS = _collect()


def _by_keyset(cases: list[Case]) -> list[Case]:
    seen: dict[tuple, Case] = {}
    for c in cases:
        seen.setdefault((c.step, tuple(sorted(c.raw_spec))), c)
    return list(seen.values())


def _doc_keys() -> dict[str, set[str]]:
    """docs/stage-contract.md's `Spec keys per step` table: step -> the backticked keys of its row."""
    table: dict[str, set[str]] = {}
    for line in CONTRACT_DOC.read_text(encoding="utf-8").splitlines():
        m = re.match(r"^\| `([a-z0-9-]+)` \| (.*) \|$", line)
        if m:
            # a key is a backticked snake_case word directly followed by a separator or a `(` note
            table[m.group(1)] = set(re.findall(r"`([a-z][a-z0-9_]*)`(?=\s*(?:,|\(|;|$))", m.group(2)))
            if "same inference keys" in m.group(2):
                table[m.group(1)] |= {"__inference__"}
    # "the same inference keys as infer-day0": its row less its own input keys
    inference = table["infer-day0"] - {"clean_in", "mask_in", "submask_base_in"}
    return {
        step: (keys - {"__inference__"}) | (inference if "__inference__" in keys else set())
        for step, keys in table.items()
    }


# ---------------------------------------------------------------------------------------------
# the fake pod: files, OSMO tokens, shims


def _rewrite_tmp(text: str, root: Path) -> str:
    return TMP_PREFIX.sub(lambda _m: str(root / "tmp"), text)


def _osmo(text: str, inputs: list[Path], out: Path, where: str) -> str:
    """OSMO's submit-time substitution; an unknown token or an input index past the task's inputs fails."""

    def repl(m: re.Match[str]) -> str:
        tok = m.group(1)
        if tok == "output":
            return str(out)
        if tok == "name":
            return RUN_NAME
        mi = re.fullmatch(r"input:(\d+)", tok)
        assert mi, f"{where}: unknown OSMO token {m.group(0)!r}"
        idx = int(mi.group(1))
        assert idx < len(inputs), f"{where}: {m.group(0)} but the task declares {len(inputs)} input(s)"
        return str(inputs[idx])

    return TOKEN.sub(repl, text)


def _site_path() -> str:
    paths = sysconfig.get_paths()
    return os.pathsep.join(dict.fromkeys([paths["purelib"], paths["platlib"]]))


def _shims(bindir: Path) -> None:
    """python3/python run the interpreter with -S (no .pth: no editable dig_stages); `uv run X` runs X."""
    bindir.mkdir(parents=True, exist_ok=True)
    py = (
        "#!/bin/sh\n"
        f'PYTHONPATH="${{PYTHONPATH:+$PYTHONPATH:}}{_site_path()}" exec "{sys.executable}" -S "$@"\n'
    )
    for name in ("python3", "python"):
        (bindir / name).write_text(py)
    uv = '#!/bin/sh\n[ "$1" = run ] || { echo "uv shim: $*" >&2; exit 97; }\nshift\nexec "$@"\n'
    (bindir / "uv").write_text(uv)
    for p in bindir.iterdir():
        p.chmod(0o755)


def _png(path: Path, size: int = 8, seed: int = 0) -> Path:
    """A small textured RGB image (image-edit alignment needs structure; the others only a valid file)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    a = 0.3 + 0.03 * rng.standard_normal((size, size))
    for _ in range(max(1, size // 5)):
        y, x = rng.integers(0, max(1, size - 6), 2)
        h, w = rng.integers(2, max(3, size // 4), 2)
        a[y : y + h, x : x + w] = rng.choice([0.1, 0.6, 0.9])
    rgb = np.clip(np.stack([a, a * 0.9, a * 0.8], -1) * 255, 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path)
    return path


@dataclass
class Pod:
    case: Case
    root: Path  # the pod's filesystem: the task's /tmp/... files live at root/tmp/...
    inputs: list[Path]
    out: Path
    fakes: Any  # StagesPod
    spec: dict[str, Any]  # the compiled spec after OSMO substitution and the /tmp rewrite
    overrides: dict[str, Any] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)

    def path(self, pod_path: str) -> Path:
        assert pod_path.startswith("/tmp/"), pod_path
        return self.root / pod_path.lstrip("/")

    def spec_path(self, key: str) -> str:
        """The in-pod path the compiler wrote for a path-valued spec key (one of the task's files)."""
        value = self.case.raw_spec[key]
        assert value in self.case.file_map, f"{self.case.id}: spec {key}={value} is not a file of the task"
        return value

    def calls(self, tool: str) -> list[list[str]]:
        return [c["argv"] for c in self.fakes.calls() if c["tool"] == tool]

    def tools(self) -> list[str]:
        return self.fakes.tools_called()


def _materialise(case: Case, tmp: Path) -> Pod:
    root = tmp / "root"
    inputs = [tmp / f"input{i}" for i in range(len(case.inputs))]
    for d in inputs:
        d.mkdir(parents=True)
    out = tmp / "output"
    out.mkdir()
    for path, contents in case.files:
        assert path.startswith("/tmp/"), f"{case.id}: file outside /tmp: {path}"
        dest = root / path.lstrip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        if path.startswith(MODULE_PREFIX):
            # OSMO substitutes tokens in every file: a module must not contain anything it would rewrite
            found = TOKEN.search(contents)
            assert not found, f"{case.id}: {path} holds an OSMO token {found[0]}"
            dest.write_text(contents, encoding="utf-8")
        else:
            dest.write_text(_osmo(_rewrite_tmp(contents, root), inputs, out, case.id), encoding="utf-8")
    spec = json.loads((root / SPEC_PATH.lstrip("/")).read_text(encoding="utf-8"))
    fakes = FAKES.StagesPod(tmp / "fakes")
    uc2 = fakes.root / "ag" / "scripts" / "utilities" / "prepare_dataset_uc2.py"
    uc2.write_text(FAKES._FAKE_HEAD + _UC2_FAKE)
    return Pod(case, root, inputs, out, fakes, spec)


def _run_launcher(pod: Pod) -> subprocess.CompletedProcess[str]:
    spec_file = pod.root / SPEC_PATH.lstrip("/")
    spec_file.write_text(json.dumps({**pod.spec, **pod.overrides}, indent=2), encoding="utf-8")
    bindir = pod.root.parent / "bin"
    _shims(bindir)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("FAKE_", "IMAGE_EDIT_")) and k not in ("HF_TOKEN", "PYTHONPATH")
    }
    env.update(PATH=f"{bindir}{os.pathsep}{env.get('PATH', '')}", FAKE_CALLS=str(pod.fakes.calls_file))
    env.update(pod.env)
    launcher = pod.path(pod.case.launcher)
    assert pod.case.command == ("bash",) and pod.case.args == (pod.case.launcher,), (
        f"{pod.case.id}: the task must run its launcher: command={pod.case.command} args={pod.case.args}"
    )
    return subprocess.run(
        ["bash", str(launcher)], cwd=pod.root.parent, env=env, capture_output=True, text=True, timeout=120
    )


def _assert_clean(proc: subprocess.CompletedProcess[str], where: str) -> None:
    for bad in ("Traceback (most recent call last)", "ModuleNotFoundError", "ImportError", "KeyError"):
        assert bad not in proc.stderr, f"{where}: {bad} in stderr:\n{proc.stderr[-4000:]}"


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _compiled_yaml(pod: Pod, pod_path: str, fills: dict[str, str]) -> Any:
    """A compiled cookbook as the step must write it: /tmp rewritten, tokens and sentinels filled."""
    text = _osmo(_rewrite_tmp(pod.case.file_map[pod_path], pod.root), pod.inputs, pod.out, pod.case.id)
    for sentinel, value in fills.items():
        assert sentinel in text, f"{pod.case.id}: {pod_path} lacks {sentinel}"
        quoted = json.dumps(value)
        text = re.sub(r"""(["']?)""" + re.escape(sentinel) + r"\1", lambda _m, q=quoted: q, text)
    return yaml.safe_load(text)


def _arg(argv: list[str], flag: str) -> str:
    assert flag in argv, f"{flag} not in {argv}"
    return argv[argv.index(flag) + 1]


def _pairs(pod: Pod) -> list[tuple[str, str]]:
    return [(m, d) for m, d in pod.spec["anomaly_types"]]


# ---------------------------------------------------------------------------------------------
# which upstream each input token must be wired to (spec key -> the task input it names)

_RAW = r"url:s3://.*/datasets/{uc}/raw"
WIRING: dict[tuple[str, str], str] = {
    ("render-day0", "assets_dir"): r"url:s3://.*/datasets/pcb/assets",
    ("render-structural", "assets_dir"): r"url:s3://.*/datasets/pcb/assets",
    ("render-day1", "assets_dir"): r"url:s3://.*/datasets/pcb/assets",
    ("image-edit", "input_dir"): r"task:(usd2roi-replicator|sdg-and-crop)",
    ("infer-day0", "clean_in"): r"task:image-edit",
    ("infer-day0", "mask_in"): r"task:usd2roi-replicator",
    ("infer-day0", "submask_base_in"): _RAW.format(uc="pcb"),
    ("infer-day1", "usd2roi_in"): r"task:usd2roi-day1",
    ("infer-day1", "submask_base_in"): _RAW.format(uc="pcb"),
    ("infer-manual", "inference_dataset"): _RAW.format(uc=r"\w+"),
    ("finetune", "pretrained_src"): r"url:s3://.*/models/pretrained",
    ("finetune", "dataset_dir"): _RAW.format(uc="{usecase}"),
    ("setup-data", "zip_dir"): r"url:s3://.*/uploads/glass-zip",
}
for _step in ("infer-day0", "infer-day1", "infer-manual"):
    WIRING[(_step, "pretrained_src_in")] = r"url:s3://.*/models/pretrained"
    WIRING[(_step, "ckpt_dataset")] = r"{ckpt}"


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_inputs_are_wired_to_the_right_upstream(case: Case) -> None:
    spec = case.raw_spec
    used: set[int] = set()
    for key, value in spec.items():
        refs = [int(i) for i in INPUT_TOKEN.findall(json.dumps(value))]
        if not refs:
            continue
        assert len(refs) == 1, f"{case.id}: {key}={value!r} names several inputs"
        assert refs[0] < len(case.inputs), f"{case.id}: {key}={value!r} but inputs are {case.inputs}"
        pattern = WIRING.get((case.step, key))
        assert pattern is not None, f"{case.id}: spec key {key} reads an input this test does not know"
        ckpt = r"task:finetune" if spec.get("fresh_checkpoint") else r"url:s3://.*/models/(?!pretrained$)\w+"
        pattern = pattern.replace("{usecase}", str(spec.get("usecase"))).replace("{ckpt}", ckpt)
        assert re.fullmatch(pattern, case.inputs[refs[0]]), (
            f"{case.id}: {key}={value!r} -> {case.inputs[refs[0]]}, expected {pattern}"
        )
        used.add(refs[0])
    assert used == set(range(len(case.inputs))), f"{case.id}: inputs {case.inputs} but the spec reads {used}"


# ---------------------------------------------------------------------------------------------
# every compiled key is one the step reads


_KEY_DRIVER = r"""
import json, runpy, sys
step, spec_path, report = sys.argv[1:4]
text = open(spec_path, encoding="utf-8").read()
read, seen = set(), []

class Tracked(dict):
    def get(self, k, d=None):
        read.add(k)
        return dict.get(self, k, d)
    def __getitem__(self, k):
        read.add(k)
        return dict.__getitem__(self, k)
    def __contains__(self, k):
        read.add(k)
        return dict.__contains__(self, k)

_loads = json.loads
def loads(s, *a, **k):
    obj = _loads(s, *a, **k)
    if s == text and isinstance(obj, dict):
        obj = Tracked(obj)
        seen.append(obj)
    return obj
json.loads = loads

class Stop(BaseException):
    pass

def stop(*a, **k):
    raise Stop

if step != "image-edit":  # image-edit parses its own flags (edit_client.main); it injects no _common
    from dig_stages import _common
    _load_options = _common.load_options
    def load_options(*a, **k):
        _load_options(*a, **k)
        raise Stop
    _common.load_options = load_options
else:
    from dig_stages import batch
    batch.expand = stop  # called once the spec (and its align_params) has been read
sys.argv = ["dig_stages", step, "--spec", spec_path]
result = {"stopped": False, "exit": None}
try:
    runpy.run_module("dig_stages", run_name="__main__", alter_sys=True)
except Stop:
    result["stopped"] = True
except SystemExit as exc:
    result["exit"] = exc.code
result["read"] = sorted(read)
if step == "image-edit" and seen:
    from dig_stages import align
    result["align_ignored"] = sorted(align.AlignParams.from_dict(dict.get(seen[0], "align_params")).ignored)
with open(report, "w") as fh:
    json.dump(result, fh)
"""


@pytest.mark.parametrize("case", _by_keyset(CASES), ids=lambda c: c.id)
def test_every_spec_key_is_read_by_the_step(case: Case, tmp_path: Path) -> None:
    pod_dir = tmp_path / "dig"
    for path, contents in case.files:
        if path.startswith(POD_DIR + "/"):
            dest = pod_dir / path[len(POD_DIR) + 1 :]
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_text(contents, encoding="utf-8")
    report = tmp_path / "report.json"
    env = dict(os.environ, PYTHONPATH=f"{pod_dir}{os.pathsep}{_site_path()}")
    proc = subprocess.run(
        [sys.executable, "-S", "-c", _KEY_DRIVER, case.step, str(pod_dir / "spec.json"), str(report)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0 and report.is_file(), proc.stderr[-3000:]
    result = json.loads(report.read_text())
    assert result["stopped"], f"{case.id}: option loading did not complete: {result}\n{proc.stderr[-3000:]}"
    # the contract key holds facts for dig-preflight / dig-outputs, never an option (dig_stages._common)
    unread = sorted(set(case.raw_spec) - set(result["read"]) - {"contract"})
    assert unread == [], f"{case.id}: the compiler writes spec key(s) {unread} that {case.step} never reads"
    assert result.get("align_ignored", []) == [], (
        f"{case.id}: align_params key(s) {result['align_ignored']} are unknown to align.AlignParams"
    )


@pytest.mark.parametrize("case", _by_keyset(CASES), ids=lambda c: c.id)
def test_spec_keys_match_the_contract_doc(case: Case) -> None:
    documented = _doc_keys()
    assert case.step in documented, f"docs/stage-contract.md has no row for {case.step}"
    keys = set(case.raw_spec) - {"contract"}  # facts for downstream readers, documented below the table
    assert keys <= documented[case.step], f"{case.id}: undocumented: {sorted(keys - documented[case.step])}"
    optional = {"zip_dir", "zip_filename"} if case.step == "setup-data" else set()  # glass only
    assert documented[case.step] - optional <= keys, (
        f"{case.id}: documented key(s) not written: {sorted(documented[case.step] - optional - keys)}"
    )


# ---------------------------------------------------------------------------------------------
# per step: a minimal valid input tree, then what a good run leaves behind


def _tool_overrides(pod: Pod) -> dict[str, Any]:
    return {**pod.fakes.tools, "tmp_dir": str(pod.root / "tmp")}


def _assets(pod: Pod) -> Path:
    scene = pod.spec["assets_dir"] + "/usd/board/" + pod.spec["scene_filename"]
    Path(scene).parent.mkdir(parents=True, exist_ok=True)
    Path(scene).write_text("#usda 1.0\n")
    return Path(scene)


def _prep_render_day0(pod: Pod) -> Callable[[], None]:
    scene = _assets(pod)
    pod.overrides = _tool_overrides(pod)

    def check() -> None:
        out = pod.out
        assert pod.tools() == ["kit", "sdg_pipeline", "usd2roi_crop"]
        assert _yaml(out / "pcba_target.yaml") == _compiled_yaml(
            pod, pod.spec_path("pcba_target"), {"__SCENE__": str(scene)}
        )
        assert _yaml(out / "day0_image.yaml") == _compiled_yaml(
            pod, pod.spec_path("image_config"), {"__OUTPUT__": str(out)}
        )
        assert _yaml(out / "day0_crop.yaml") == _compiled_yaml(
            pod, pod.spec_path("crop_config"), {"__OUTPUT__": str(out)}
        )
        assert sorted(out.glob("trigger_*/rgb_*.png")) and sorted(out.glob("crop/*/x*_y*/normal_img/*.png"))

    return check


def _prep_render_structural(pod: Pod) -> Callable[[], None]:
    scene = _assets(pod)
    modes = pod.spec["defect_modes"]
    pod.overrides = _tool_overrides(pod)
    pod.env["FAKE_MODES"] = ",".join(modes)

    def check() -> None:
        out, work = pod.out, Path(pod.spec["work_dir"])
        assert work.is_relative_to(pod.root / "tmp"), f"work_dir {work} is not a pod-local /tmp dir"
        assert pod.tools() == ["kit", "sdg_pipeline", "crop_components"]
        crop = pod.calls("crop_components")[0]
        assert _arg(crop, "--offset") == str(pod.spec["crop_offset"])
        assert _yaml(out / "render_config.yaml") == _compiled_yaml(
            pod, pod.spec_path("render_config"), {"__OUTPUT__": str(work)}
        )
        assert _yaml(out / "pcba_target.yaml")["scene"] == str(scene)
        assert sorted(p.parent.parent.name for p in out.glob("cropped/*/rgb/*.png")) == sorted(modes)

    return check


def _prep_render_day1(pod: Pod) -> Callable[[], None]:
    scene = _assets(pod)
    photo = _png(Path(pod.spec["assets_dir"]) / pod.spec["real_image_filename"])
    pod.overrides = _tool_overrides(pod)

    def check() -> None:
        out = pod.out
        assert pod.tools() == ["kit", "usd2roi_render", "usd2roi_register", "usd2roi_crop"]
        fills = {"__SCENE__": str(scene), "__REAL_IMAGE__": str(photo), "__OUTPUT__": str(out)}
        assert _yaml(out / "usd2roi_day1.yaml") == _compiled_yaml(pod, pod.spec_path("config"), fills)
        assert (out / "render" / "rgb.png").is_file() and (out / "aligned" / "params.json").is_file()
        assert sorted(out.glob("crop/**/normal_img/*.png"))

    return check


def _prep_image_edit(pod: Pod, server: Any) -> Callable[[], None]:
    src = Path(pod.spec["input_dir"])
    if pod.spec["layout"] == "cells":
        _png(src / "crop" / "passive_component" / "x0_y0" / "normal_img" / "0000.png", 48, 1)
        expected = [pod.out / "crop" / "passive_component" / "x0_y0" / ("0000" + pod.spec["output_ext"])]
    else:
        _png(src / "cropped" / "shift" / "rgb" / "0000.png", 48, 2)
        expected = [pod.out / "shift" / "rgb" / ("0000" + pod.spec["output_ext"])]
    side = pod.root / "side"
    pod.overrides = {"endpoint": server.url, "side_dir": str(side)}

    def check() -> None:
        assert sorted(p for p in pod.out.rglob("*") if p.is_file()) == expected
        posts = [r for r in server.requests if r["method"] == "POST"]
        assert len(posts) == 1 and posts[0]["path"] == "/v1/images/edits"
        fields = posts[0]["fields"]
        assert fields["model"] == pod.spec["model"] and fields["prompt"] == pod.spec["prompt"]
        for k, v in pod.spec["generation"].items():
            assert fields[k] == str(v), (k, fields)
        meta = json.loads(next(side.glob("meta_*.json")).read_text())
        assert meta["model"] == pod.spec["model"] and meta["generation"] == pod.spec["generation"]
        assert ("alignment" in meta) == bool(pod.spec["align"])

    return check


def _models(pod: Pod) -> None:
    """pretrained_src_in / ckpt_dataset: models/pretrained, and models/<uc> (flat) or the finetune output."""
    pre = Path(pod.spec["pretrained_src_in"]) / "pretrained"
    for item in ("NVDINOV2", "google-t5", "nvidia/Cosmos-Predict2-2B-Text2Image"):
        (pre / item).mkdir(parents=True)
        (pre / item / "w.bin").write_bytes(b"w")
    ck = Path(pod.spec["ckpt_dataset"])
    if pod.spec["fresh_checkpoint"]:
        job = ck / "results" / "anomaly_gen" / RUN_NAME / "job"
        (job / "checkpoints" / "model").mkdir(parents=True)
        (job / "checkpoints" / "model" / "iter_000000700.pt").write_bytes(b"w")
        (job / "ag_config.yaml").write_text("anomaly_types: []\n")
    else:
        (ck / "ag_config.yaml").write_text("anomaly_types: []\n")
        (ck / f"iter_{int(pod.spec['checkpoint_step']):09d}.pt").write_bytes(b"w")


def _raw_dataset(root: Path, pairs: list[tuple[str, str]], wrapper: str = "", spec: bool = True) -> None:
    for material, defect in pairs:
        _png((root / wrapper if wrapper else root) / material / "mask" / defect / "0.png")
        _png((root / wrapper if wrapper else root) / material / "clean_image" / "0.png")
    if spec:
        (root / "defect_spec.jsonl").write_text("{}\n")


def _infer_check(pod: Pod, mode: str = "") -> Callable[[], None]:
    def check() -> None:
        out = pod.out / "inference"
        chain = ["validate_checkpoint", "prep_testcase", "validate_jsonl", "run_sdg", "verify_output"]
        assert pod.tools() == chain
        step = "700" if pod.spec["fresh_checkpoint"] else str(pod.spec["checkpoint_step"])
        assert _arg(pod.calls("validate_checkpoint")[0], "--step") == step
        prep = pod.calls("prep_testcase")[0]
        assert _arg(prep, "--num-sdg") == str(pod.spec["num_sdg"])
        assert _arg(prep, "--name") == f"{RUN_NAME}_infer"
        sdg = pod.calls("run_sdg")[0]
        assert _arg(sdg, "--model_size") == pod.spec["model_size"] and _arg(sdg, "--step") == step
        if pod.spec["num_gpus"] is None:
            assert "--num_gpus" not in sdg
        else:
            assert _arg(sdg, "--num_gpus") == str(pod.spec["num_gpus"])
        assert Path(_arg(sdg, "--output_dir")) == out
        assert sorted((out / "reconstructed_image").glob("*.png"))
        linked = sorted(p.name for p in (Path(pod.overrides["ag_root"]) / "checkpoints").iterdir())
        assert linked == ["NVDINOV2", "google-t5", "nvidia"]
        spec_used = Path(_arg(prep, "--defect-spec")).read_text().splitlines()
        if mode == "A":
            assert spec_used == ["{}"]
        else:
            from dig_stages import defect_spec

            expected = defect_spec.render_defect_spec(
                pod.spec["anomaly_types"], pod.spec["spatial_dependency"], pod.spec["roi_prompt"]
            ).splitlines()
            assert spec_used == expected

    return check


def _prep_infer_day0(pod: Pod) -> Callable[[], None]:
    pairs = _pairs(pod)
    clean, masks = Path(pod.spec["clean_in"]), Path(pod.spec["mask_in"])
    for material in dict.fromkeys(m for m, _ in pairs):
        # image-edit output (cells layout) and the usd2roi-replicator crop tree
        _png(clean / "crop" / material / "x0_y0" / "0000.jpg")
        _png(masks / "crop" / material / "x0_y0" / "normal_img" / "0000.png")
        _png(masks / "crop" / material / "x0_y0" / "cad_mask" / "0000_cad_mask.png")
    (masks / "crop" / "semantic_segmentation_labels.json").write_text('{"1": "pad"}')
    _raw_dataset(Path(pod.spec["submask_base_in"]), pairs, wrapper="PCB")
    _models(pod)
    pod.overrides = _tool_overrides(pod)
    return _infer_check(pod)


def _prep_infer_day1(pod: Pod) -> Callable[[], None]:
    pairs = _pairs(pod)
    usd = Path(pod.spec["usd2roi_in"])
    for material in dict.fromkeys(m for m, _ in pairs):
        _png(usd / "crop" / material / "normal_img" / "0000.png")
        _png(usd / "crop" / material / "cad_mask" / "0000_cad_mask.png")
    (usd / "crop" / "semantic_segmentation_labels.json").write_text('{"1": "pad"}')
    _raw_dataset(Path(pod.spec["submask_base_in"]), pairs, wrapper="PCB")
    _models(pod)
    pod.overrides = _tool_overrides(pod)
    return _infer_check(pod)


def _prep_infer_manual(pod: Pod) -> Callable[[], None]:
    """Mode A (the raw dataset ships defect_spec.jsonl) for shipped checkpoints, Mode B for fresh ones."""
    root = Path(pod.spec["inference_dataset"])
    mode = "B" if pod.spec["fresh_checkpoint"] else "A"
    if mode == "A":
        _raw_dataset(root, _pairs(pod))
    else:
        _png(root / "clean_image" / "0.png")
        _raw_dataset(root / "submasks", _pairs(pod), spec=False)
    _models(pod)
    pod.overrides = _tool_overrides(pod)
    check = _infer_check(pod, mode)

    def check_mode() -> None:
        check()
        prep = pod.calls("prep_testcase")[0]
        assert ("--clean-dir" in prep) == (mode == "B")

    return check_mode


def _prep_finetune(pod: Pod) -> Callable[[], None]:
    pre = Path(pod.spec["pretrained_src"])
    (pre / "NVDINOV2").mkdir(parents=True)
    ds = Path(pod.spec["dataset_dir"])
    _raw_dataset(ds, [("MAT", "defect_a"), ("MAT", "defect_b")])
    pod.overrides = _tool_overrides(pod)

    def check() -> None:
        assert pod.tools() == ["validate_dataset", "prep_testcase", "torchrun"]
        ag = Path(pod.overrides["ag_root"])
        config = ag / "ag_configs" / f"{RUN_NAME}.yaml"
        assert config.read_text() == pod.path(pod.case.raw_spec["config"]).read_text()
        cfg = _yaml(config)
        from dig_stages import finetune

        assert cfg["job"]["group"] == RUN_NAME and cfg["job"]["name"] == finetune.job_name(RUN_NAME)
        assert Path(cfg["dataloader_train"]["dataset"]["dataset_dir"]) == ds
        prep = pod.calls("prep_testcase")[0]
        # the compiled config's validation jsonl is the file the step's validation prep wrote
        assert cfg["dataloader_val"]["dataset"]["input_data_path"] == _arg(prep, "--output-jsonl")
        assert Path(_arg(prep, "--output-jsonl")).is_file()
        # the hygiene re-check's ints are the config's own (save_iter sits under checkpoint:, as upstream)
        trainer = cfg.get("trainer", {})
        iters = {
            **{k: trainer.get(k) for k in ("max_iter", "validation_iter", "logging_iter")},
            "save_iter": cfg.get("checkpoint", {}).get("save_iter"),
        }
        assert iters == {k: pod.spec[k] for k in iters}, (iters, pod.spec)
        assert "early_stop" not in trainer
        torch = pod.calls("torchrun")[0]
        assert torch[0] == f"--nproc_per_node={pod.spec['num_gpus']}"
        assert f"--ag_config=ag_configs/{RUN_NAME}.yaml" in torch
        assert sorted(Path(pod.spec["results_dir"]).glob("**/checkpoints/model/iter_*.pt"))
        assert Path(pod.spec["results_dir"]).is_relative_to(pod.out)

    return check


def _prep_setup_pretrained(pod: Pod) -> Callable[[], None]:
    pod.overrides = _tool_overrides(pod)

    def check() -> None:
        out = pod.out / "pretrained"
        dl = pod.calls("download_checkpoints")[0]
        assert dl[dl.index("--model_sizes") + 1 :] == [str(s) for s in pod.spec["model_sizes"]]
        assert (out / "nvidia" / "C-RADIO-V3" / "model.safetensors").is_file()
        assert (out / "NVDINOV2" / "w.bin").is_file() and (out / "google-t5" / "w.bin").is_file()

    return check


def _prep_setup_model(pod: Pod) -> Callable[[], None]:
    pod.overrides = _tool_overrides(pod)

    def check() -> None:
        assert _arg(pod.calls("download_ckpt")[0], "--uc") == pod.spec["script_uc"]
        assert sorted(p.name for p in pod.out.iterdir()) == ["ag_config.yaml", "iter_000014000.pt"]

    return check


def _prep_setup_data(pod: Pod) -> Callable[[], None]:
    if pod.spec.get("zip_dir"):
        with zipfile.ZipFile(Path(pod.spec["zip_dir"]) / "mobile_screen.zip", "w") as zf:
            zf.writestr("x.txt", "x")
    pod.overrides = _tool_overrides(pod)
    tool = {"pcb": "uc1", "metal_surface": "uc2", "glass": "uc3"}[pod.spec["usecase"]]

    def check() -> None:
        assert pod.tools() == [tool]
        assert (pod.out / "defect_spec.jsonl").is_file()
        assert not (pod.out / ".cache").exists() and not (pod.out / ".gitattributes").exists()

    return check


def _prep_setup_assets(pod: Pod) -> Callable[[], None]:
    pod.overrides = _tool_overrides(pod)

    def check() -> None:
        assert pod.tools() == ["hf"]
        assert sorted(p.name for p in pod.out.iterdir()) == ["spark_lighting.usd"]

    return check


PREPARE: dict[str, Callable[..., Callable[[], None]]] = {
    "render-day0": _prep_render_day0,
    "render-structural": _prep_render_structural,
    "render-day1": _prep_render_day1,
    "infer-day0": _prep_infer_day0,
    "infer-day1": _prep_infer_day1,
    "infer-manual": _prep_infer_manual,
    "finetune": _prep_finetune,
    "setup-pretrained": _prep_setup_pretrained,
    "setup-model": _prep_setup_model,
    "setup-data": _prep_setup_data,
    "setup-assets": _prep_setup_assets,
}


def test_every_compiled_step_is_covered() -> None:
    steps = {c.step for c in CASES}
    assert steps == set(PREPARE) | {"image-edit"}, steps
    assert len(list(GENERATED.glob("*/*.yaml"))) >= 29
    assert sum(len(c.where) for c in CASES) == N_TASKS, "a compiled task runs no dig_stages step"


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_compiled_task_runs_its_step(case: Case, tmp_path: Path) -> None:
    m = LAUNCH.search(case.file_map[case.launcher])
    launcher = case.file_map[case.launcher]
    assert f"export PYTHONPATH={POD_DIR}\n" in launcher and "set -euo pipefail\n" in launcher
    assert m.group(3) == SPEC_PATH
    assert m.group(1) == ("uv run python" if case.step == "image-edit" else "python3")
    pod = _materialise(case, tmp_path)
    if case.step == "image-edit":
        from dig_stages.edit_fake_server import FakeEditServer

        with FakeEditServer() as server:
            check = _prep_image_edit(pod, server)
            proc = _run_launcher(pod)
    else:
        check = PREPARE[case.step](pod)
        proc = _run_launcher(pod)
    detail = (
        f"{case.id} (also {len(case.where) - 1} identical task(s))\n--- stdout\n{proc.stdout[-3000:]}"
        f"\n--- stderr\n{proc.stderr[-5000:]}"
    )
    _assert_clean(proc, detail)
    assert proc.returncode == 0, detail
    assert "ERROR: " not in proc.stderr, detail
    check()
