"""Shared fixtures for dig_stages tests (each section self-contained; append yours below)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

# ---------------------------------------------------------------------------------------------
# glue-step fixtures: tiny images, fake container tools, running a step in a subprocess

STAGES_PKG = Path(__file__).resolve().parents[1]

_FAKE_HEAD = textwrap.dedent(
    """\
    import json, os, sys
    from pathlib import Path
    LOG = os.environ.get("FAKE_CALLS")
    def record(tool, extra=None):
        if LOG:
            with open(LOG, "a") as fh:
                fh.write(json.dumps({"tool": tool, "argv": sys.argv[1:], "extra": extra}) + "\\n")
    def arg(name, default=None):
        a = sys.argv
        return a[a.index(name) + 1] if name in a else default
    def png(path, size=(8, 8), color=(200, 10, 10)):
        from PIL import Image
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", size, color).save(path)
    def cfg():
        import yaml
        return yaml.safe_load(open(arg("--config")))
    def maybe_fail(tool):
        code = int(os.environ.get("FAKE_FAIL_" + tool, "0"))
        if code:
            print(tool + " failing on purpose", file=sys.stderr)
            sys.exit(code)
    """
)

_FAKES = {
    # Kit launcher: run the --exec script with this Python
    "kit.py": """
        import shlex, subprocess
        record("kit")
        sys.exit(subprocess.call([sys.executable] + shlex.split(arg("--exec"))))
    """,
    "sim/scripts/sdg/standalone/sdg_pipeline.py": """
        record("sdg_pipeline"); maybe_fail("SDG")
        c = cfg(); out = Path(c["output"])
        assert "scene" in __import__("yaml").safe_load(open(arg("--pcba-config")))
        if not os.environ.get("FAKE_NO_FRAMES"):
            png(out / "trigger_0000" / "rgb_x0_y0.png")
    """,
    "sim/scripts/usd2roi/usd2roi_crop.py": """
        record("usd2roi_crop"); maybe_fail("CROP")
        c = cfg(); crop = Path(c["output"]["dir"]) / "crop"
        if os.environ.get("FAKE_NO_ROI"):
            crop.mkdir(parents=True, exist_ok=True); sys.exit(0)
        if c.get("fake_layout") == "day1":
            png(crop / "IC" / "normal_img" / "0000.png"); png(crop / "IC" / "cad_mask" / "0000_cad_mask.png")
        else:
            for cell in ("x0_y0", "x1_y0"):
                png(crop / "passive_component" / cell / "normal_img" / "0000.png")
                png(crop / "passive_component" / cell / "cad_mask" / "0000_cad_mask.png")
        (crop / "semantic_segmentation_labels.json").write_text("{}")
    """,
    "sim/scripts/usd2roi/usd2roi_render.py": """
        record("usd2roi_render"); c = cfg(); png(Path(c["output"]["dir"]) / "render" / "rgb.png")
    """,
    "sim/scripts/usd2roi/usd2roi_register.py": """
        record("usd2roi_register"); maybe_fail("REGISTER")
        c = cfg(); p = Path(c["output"]["dir"]) / "aligned" / "params.json"
        p.parent.mkdir(parents=True, exist_ok=True); p.write_text(json.dumps({"rotation": 0.0}))
    """,
    "sim/scripts/postprocess/crop_components.py": """
        record("crop_components"); out = Path(arg("--output"))
        assert Path(arg("--input")).name == "trigger_0000"
        for mode in os.environ.get("FAKE_MODES", "shift").split(","):
            if mode == "FLAT":
                png(out / "rgb" / "0000.png")
            elif mode:
                for k in ("rgb", "semantic_segmentation", "component_instance"):
                    png(out / mode / k / "0000.png")
    """,
    "ag/scripts/utilities/prep_testcase.sh": """
        record("prep_testcase"); maybe_fail("PREP")
        n = 0 if os.environ.get("FAKE_EMPTY_JSONL") else int(arg("--num-sdg"))
        amp = Path(arg("--amp-output-dir")); amp.mkdir(parents=True, exist_ok=True); png(amp / "a.png")
        Path(arg("--output-jsonl")).write_text("".join(json.dumps({"i": i}) + "\\n" for i in range(n)))
    """,
    "ag/scripts/utilities/validate_checkpoint.py": """
        record("validate_checkpoint")
        w = Path(sys.argv[1]); step = int(arg("--step"))
        sys.exit(0 if (w / "checkpoints" / "model" / f"iter_{step:09d}.pt").exists() else 3)
    """,
    "ag/scripts/utilities/validate_jsonl.py": """
        record("validate_jsonl"); maybe_fail("VALIDATE_JSONL")
    """,
    "ag/scripts/utilities/validate_dataset.py": """
        record("validate_dataset"); maybe_fail("VALIDATE_DATASET")
    """,
    "ag/scripts/utilities/run_sdg.sh": """
        record("run_sdg", os.environ.get("IMAGINAIRE_OUTPUT_ROOT")); maybe_fail("RUN_SDG")
        if not os.environ.get("FAKE_NO_IMAGES"):
            png(Path(arg("--output_dir")) / "reconstructed_image" / "0000.png")
    """,
    "ag/scripts/utilities/verify_output.sh": """
        record("verify_output")
    """,
    "ag/scripts/utilities/download_anomalygen_checkpoints.sh": """
        record("download_ckpt"); d = Path(arg("--checkpoint-dir")) / "nvidia" / "Cosmos-AnomalyGen-PCB-2B"
        d.mkdir(parents=True); (d / "iter_000014000.pt").write_bytes(b"w" * 10)
        (d / "ag_config.yaml").write_text("anomaly_types: []\\n")
    """,
    "torchrun.py": """
        record("torchrun", os.environ.get("IMAGINAIRE_OUTPUT_ROOT")); maybe_fail("TORCHRUN")
        m = Path(os.environ["IMAGINAIRE_OUTPUT_ROOT"]) / "anomaly_gen" / "e" / "j" / "checkpoints" / "model"
        m.mkdir(parents=True); (m / "iter_000000010.pt").write_bytes(b"w")
    """,
    "hf.py": """
        record("hf"); maybe_fail("HF")
        out = Path(arg("--local-dir")); out.mkdir(parents=True, exist_ok=True)
        if "model.safetensors" in sys.argv:
            (out / "model.safetensors").write_bytes(b"m")
        else:
            (out / "spark_lighting.usd").write_text("#usda 1.0\\n"); (out / ".gitattributes").write_text("x")
            (out / ".cache").mkdir(exist_ok=True); (out / ".cache" / "c").write_text("c")
    """,
    # python -m scripts.* in the anomalygen workspace (cwd = ag root)
    "ag/scripts/__init__.py": "",
    "ag/scripts/utilities/__init__.py": "",
    "ag/scripts/download_checkpoints.py": """
        record("download_checkpoints"); print("downloading"); maybe_fail("DOWNLOAD")
        for item in ("NVDINOV2", "nvidia/Cosmos-Predict2-2B-Text2Image", "google-t5"):
            d = Path("checkpoints") / item; d.mkdir(parents=True, exist_ok=True); (d / "w.bin").write_bytes(b"x")
    """,
    "ag/scripts/utilities/prepare_dataset_uc1.py": """
        record("uc1"); out = Path(sys.argv[1]); png(out / "PCB" / "IC" / "mask" / "bridge" / "0.png")
        (out / "defect_spec.jsonl").write_text("{}\\n"); (out / ".gitattributes").write_text("x")
    """,
    "ag/scripts/utilities/prepare_dataset_uc3.py": """
        record("uc3"); out = Path(sys.argv[1]); assert Path(arg("--zip")).is_file()
        png(out / "Phone" / "clean_image" / "0.png"); (out / ".cache").mkdir(); (out / "defect_spec.jsonl").write_text("{}\\n")
    """,
}


def stages_png(
    path: Path, size: tuple[int, int] = (8, 8), color: tuple[int, int, int] = (10, 120, 10)
) -> Path:
    """Write a tiny RGB PNG (creating parents)."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)
    return path


class StagesPod:
    """A fake pod: container tool trees under tmp_path plus the option overrides pointing at them."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.calls_file = root / "calls.jsonl"
        for rel, body in _FAKES.items():
            p = root / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(_FAKE_HEAD + textwrap.dedent(body) if body else "")
        self.tmp = root / "podtmp"
        self.tmp.mkdir()
        self.nvoptix = root / "nvoptix.bin"
        self.nvoptix.write_bytes(b"x")
        py = sys.executable
        self.tools = {
            "kit": f"{py} {root / 'kit.py'} --no-window",
            "sim_root": str(root / "sim"),
            "ag_root": str(root / "ag"),
            "python": py,
            "bash": py,
            "hf": f"{py} {root / 'hf.py'}",
            "torchrun": f"{py} {root / 'torchrun.py'}",
            "tmp_dir": str(self.tmp),
            "nvoptix_path": str(self.nvoptix),
            "shm_path": str(root),
            "min_shm_gib": 0,
        }

    def opts(self, keys: tuple[str, ...] | None = None, **extra) -> dict:
        base = self.tools if keys is None else {k: self.tools[k] for k in keys}
        return {**base, **extra}

    def calls(self) -> list[dict]:
        if not self.calls_file.exists():
            return []
        return [json.loads(line) for line in self.calls_file.read_text().splitlines()]

    def tools_called(self) -> list[str]:
        return [c["tool"] for c in self.calls()]


@pytest.fixture
def stages_pod(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> StagesPod:
    pod = StagesPod(tmp_path / "pod")
    monkeypatch.setenv("FAKE_CALLS", str(pod.calls_file))
    for key in list(os.environ):
        if key.startswith("FAKE_") and key != "FAKE_CALLS":
            monkeypatch.delenv(key)
    return pod


@pytest.fixture
def stages_run():
    """Run `python -m dig_stages <step> --spec <json>` in a subprocess; returns CompletedProcess."""

    def run(step: str, spec: dict, spec_path: Path, *extra: str, env: dict | None = None):
        spec_path.write_text(json.dumps(spec))
        full_env = dict(os.environ, PYTHONPATH=str(STAGES_PKG), **(env or {}))
        return subprocess.run(
            [sys.executable, "-m", "dig_stages", step, "--spec", str(spec_path), *extra],
            capture_output=True,
            text=True,
            env=full_env,
            timeout=60,
        )

    return run


@pytest.fixture
def stages_png_writer():
    return stages_png


# ---------------------------------------------------------------------------------------------
# USD / crop fixtures: a seeded synthetic board and the 0603_H100 / 1152819000 cookbook fixture copies

STAGES_DATA = Path(__file__).resolve().parent / "data"


def stages_cookbook(board: str, name: str) -> dict:
    """A cookbook fixture from tests/data/<board>/<name>.yaml (copies of the spec's fields)."""
    import yaml

    return yaml.safe_load((STAGES_DATA / board / f"{name}.yaml").read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def stages_board_usd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default synthetic board (seed 0: 24 x 0603, 4 ICs, 8 unlabelled resistors), written once."""
    pytest.importorskip("pxr")
    from dig_stages.synthetic_board import make_board

    path = tmp_path_factory.mktemp("board") / "board.usda"
    make_board(path, seed=0)
    return path


@pytest.fixture(scope="session")
def stages_cookbooks():
    return stages_cookbook
