"""Baseline for bench/sweep.py: Hydra's basic launcher composes every job, which then compiles it with dig."""

from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from compiler.compose import Request, build_config, hydra_container
from compiler.flows import compile_key
from compiler.pipeline import emit_checked, header, write_atomic
from compiler.render import build_workflow
from compiler.tasks import plan_tasks
from compiler.validate_config import validate_config


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    choices = dict(HydraConfig.get().runtime.choices)
    config = build_config(hydra_container(cfg), choices, Request(), {}, [])
    config, _ = validate_config(config)
    key = compile_key(config)
    text = emit_checked(
        build_workflow(config, plan_tasks(config), placeholders=True), header(config, choices), key
    )[0]
    out = Path(HydraConfig.get().runtime.output_dir)
    write_atomic(out / "workflow.yaml", text)


if __name__ == "__main__":
    main()
