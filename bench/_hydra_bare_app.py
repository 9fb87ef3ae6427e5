"""Baseline for bench/compile_latency.py: a bare @hydra.main app composing conf/ and writing nothing."""

import hydra
from omegaconf import DictConfig


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    assert cfg.flow.key


if __name__ == "__main__":
    main()
