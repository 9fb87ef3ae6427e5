"""Load one config-group option as Hydra composes it: its defaults list (e.g. a board's `_pcba` base) applied."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from compiler.paths import CONF_DIR


def load_option(group: str, option: str, searchpath: tuple[Path, ...] | list[Path] = ()) -> dict[str, Any]:
    """The option `conf/<group>/<option>.yaml` composed with its defaults list, unresolved.

    Composes the option as a primary config, so a base it extends is merged exactly as it is in a
    full compose; `searchpath` dirs are searched after conf/ (Hydra's `hydra.searchpath`).
    """
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    # Hydra finds a primary config before it applies hydra.searchpath: start from the dir holding the
    # option and search the others (conf/ included, for the bases it extends).
    dirs = [CONF_DIR, *(Path(d).resolve() for d in searchpath)]
    home = next((d for d in dirs if (d / group / f"{option}.yaml").is_file()), CONF_DIR)
    rest = [d for d in dirs if d != home]
    overrides = [searchpath_override(rest)] if rest else []
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(home), version_base="1.3", job_name="dig"):
            cfg = compose(f"{group}/{option}", overrides=overrides)
            data: dict[str, Any] = OmegaConf.to_container(cfg, resolve=False)  # type: ignore[assignment]
    finally:
        GlobalHydra.instance().clear()
    data.pop("hydra", None)
    return data


def searchpath_override(searchpath: tuple[Path, ...] | list[Path]) -> str:
    """The `hydra.searchpath=[...]` override that adds user config dirs after conf/."""
    dirs = ",".join(f"'file://{Path(d).resolve()}'" for d in searchpath)
    return f"hydra.searchpath=[{dirs}]"
