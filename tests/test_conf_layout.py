"""conf/ written once, in Hydra's terms: taxonomies, resource blocks, flow specializations, presets per flow."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from compiler.compose import Composer, parse_overrides
from compiler.errors import DigError
from compiler.flows import declaration, flow_file, knob_names, variant_knob_sets, variants
from compiler.paths import CONF_DIR, group_options

PAIRS = [(f, u) for f in group_options("flow") for u in flow_file(f)["flow"]["usecases"]]
HOME_MADE = ("variants", "drop_knobs", "set_knobs", "by_flow")


def _yaml(path: Path) -> object:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _keys(node: object) -> set[str]:
    if isinstance(node, dict):
        return {str(k) for k in node} | {k for v in node.values() for k in _keys(v)}
    if isinstance(node, list):
        return {k for v in node for k in _keys(v)}
    return set()


def test_no_home_made_composition_keys_remain():
    for path in sorted(CONF_DIR.rglob("*.yaml")):
        assert not _keys(_yaml(path)) & set(HOME_MADE), path


@pytest.mark.parametrize("usecase", group_options("usecase"))
def test_each_taxonomy_is_written_once(usecase, composer):
    path = CONF_DIR / "usecase" / f"{usecase}.yaml"
    taxonomy = _yaml(path)["usecase"]["anomaly_types"]  # type: ignore[index]
    assert (
        path.read_text(encoding="utf-8").count(
            yaml.safe_dump(taxonomy, default_flow_style=True, width=10_000).strip()
        )
        == 1
    )
    config = composer.compose(parse_overrides(["flow=finetune", f"usecase={usecase}"])).config
    ag = config["cookbooks"]["ag_config"]
    assert ag["dataloader_train"]["dataset"]["anomaly_types"] == taxonomy
    assert ag["model"]["config"]["ag_config"]["anomaly_embedding"]["anomaly_types"] == taxonomy
    assert config["usecase"]["anomaly_types"] == taxonomy and "${" not in str(config["usecase"])


def test_day0_taxonomy_comes_from_the_use_case(composer):
    config = composer.compose(parse_overrides(["flow=day0"])).config
    assert config["knobs"]["anomaly_types_json"] == config["usecase"]["anomaly_types"]


def test_a_cookbook_override_still_wins_over_its_interpolation(composer):
    pairs = [["IC", "bridge"]]
    config = composer.compose(
        parse_overrides(
            ["flow=finetune", f"cookbooks.ag_config.dataloader_train.dataset.anomaly_types={pairs}"]
        )
    ).config
    assert config["cookbooks"]["ag_config"]["dataloader_train"]["dataset"]["anomaly_types"] == pairs
    assert (
        config["cookbooks"]["ag_config"]["model"]["config"]["ag_config"]["anomaly_embedding"]["anomaly_types"]
        == config["usecase"]["anomaly_types"]
    )


def test_resource_knobs_live_only_in_conf_resources():
    resource_knobs = {k for p in (CONF_DIR / "resources").glob("*.yaml") for k in _yaml(p)}  # type: ignore[union-attr]
    assert {"render_gpu", "augment_storage", "infer_memory", "train_cpu", "platform"} <= resource_knobs
    for group in ("flow", "flow_usecase"):
        for path in (CONF_DIR / group).glob("*.yaml"):
            assert not set((_yaml(path) or {}).get("knobs", {})) & resource_knobs, path  # type: ignore[union-attr]


@pytest.mark.parametrize(("flow", "usecase"), PAIRS)
def test_offline_declaration_and_knob_set_are_what_hydra_composes(flow, usecase, composer):
    """flows.declaration / knob_names (read by declared(), schema, matrix) equal the full Hydra compose."""
    choices = composer.resolve_choices(parse_overrides([f"flow={flow}", f"usecase={usecase}"]), {})
    cfg = composer._hydra_compose(choices)
    assert cfg["flow"] == declaration(flow, usecase)
    assert list(cfg["knobs"]) == list(knob_names(flow, usecase))
    config = composer.compose(parse_overrides([f"flow={flow}", f"usecase={usecase}"])).config
    assert config["flow"]["variant"] == cfg["flow"]["variant"] != "???"
    assert list(config["knobs"]) == variant_knob_sets()[config["flow"]["variant"]]


def test_specialization_turns_day1_into_real_alignment_on_pcb_only(composer):
    pcb = composer.compose(parse_overrides(["flow=day1", "usecase=pcb"])).config
    glass = composer.compose(parse_overrides(["flow=day1", "usecase=glass"])).config
    assert (pcb["flow"]["variant"], glass["flow"]["variant"]) == ("real_alignment", "manual_roi")
    added = set(pcb["knobs"]) - set(glass["knobs"])
    assert added == {"scene_filename", "real_image_filename", "use_usd2roi_day1", "usd2roi_image"} | {
        f"render_{r}" for r in ("gpu", "cpu", "memory", "storage")
    }
    assert not set(glass["knobs"]) - set(pcb["knobs"])
    assert variants()["manual_roi"]["usecases"] == ["metal_surface", "glass"]


def test_preset_values_come_from_knobs_flow(composer):
    config = composer.compose(parse_overrides(["flow=day0", "knobs=smoke"])).config
    smoke = _yaml(CONF_DIR / "knobs_flow" / "smoke_day0.yaml")
    assert smoke and all(config["knobs"][k] == v for k, v in smoke.items())  # type: ignore[union-attr]
    with pytest.raises(DigError) as exc:
        composer.compose(parse_overrides(["flow=setup", "knobs=smoke"]))
    assert "does not apply to flow 'setup'" in str(exc.value) and "day1_manual_roi" in str(exc.value)


def _user_preset(root: Path, values: str) -> Composer:
    (root / "knobs").mkdir(parents=True)
    (root / "knobs_flow").mkdir()
    (root / "knobs" / "tiny.yaml").write_text("# @package _global_\npreset:\n  key: tiny\n")
    (root / "knobs_flow" / "tiny_day0.yaml").write_text(f"# @package preset.knobs\n{values}\n")
    return Composer(searchpath=[root])


def test_a_user_preset_in_a_config_dir(tmp_path):
    composer = _user_preset(tmp_path, "num_sdg: 7")
    assert composer.compose(parse_overrides(["flow=day0", "knobs=tiny"])).config["knobs"]["num_sdg"] == 7


def test_a_preset_knob_the_flow_lacks_is_refused(tmp_path):
    composer = _user_preset(tmp_path, "num_sdgg: 7")
    with pytest.raises(DigError) as exc:
        composer.compose(parse_overrides(["flow=day0", "knobs=tiny"]))
    assert "sets a knob flow 'day0' does not have" in str(exc.value)


def test_a_use_case_without_its_specialization_is_refused(tmp_path):
    """setup names its variant per use case (`flow.variant: ???`): a flow file that lists a use case
    without giving it one is refused, not compiled with a placeholder."""
    (tmp_path / "flow_usecase").mkdir()
    composer = Composer(searchpath=[tmp_path])
    cfg = composer._hydra_compose(
        composer.resolve_choices(parse_overrides(["flow=setup", "usecase=pcb"]), {})
    )
    assert cfg["flow"]["variant"] == "setup_pcb"
    from compiler.compose import build_config

    broken = {**cfg, "flow": {**cfg["flow"], "variant": "???"}}
    with pytest.raises(DigError) as exc:
        build_config(broken, {"flow": "setup", "usecase": "pcb"}, parse_overrides([]), {}, [])
    assert "conf/flow_usecase/setup_pcb.yaml" in str(exc.value)


def test_a_knob_default_referring_to_a_knob_waits_for_the_overrides(composer):
    """Resolved after the overrides: `${knobs.num_sdg}` follows knobs.num_sdg=17; a use-case reference
    was resolved at composition; a command-line `${...}` stays text."""
    from compiler.compose import build_config

    choices = composer.resolve_choices(parse_overrides(["flow=day1_manual_roi"]), {})
    cfg = composer._hydra_compose(choices)
    assert cfg["knobs"]["checkpoint_step"] == 14000  # ${usecase.checkpoint_step}, resolved once
    cfg = {**cfg, "knobs": {**cfg["knobs"], "roi_prompt": "${knobs.num_sdg}"}}
    req = parse_overrides(["knobs.num_sdg=17", "knobs.model_size=${HOME}"])
    config = build_config(cfg, choices, req, {}, [])
    assert config["knobs"]["roi_prompt"] == 17 and config["knobs"]["model_size"] == "${HOME}"


def test_info_names_a_user_preset_file(tmp_path, capsys):
    from compiler.introspect import show_info

    composer = _user_preset(tmp_path, "num_sdg: 7")
    out = show_info("config", ["flow=day0", "knobs=tiny"], composer=composer)
    assert "num_sdg: 7  <- knobs_flow/tiny_day0.yaml" in out
    rows = show_info("defaults", ["flow=day0", "knobs=tiny"], composer=composer).splitlines()
    assert [r.split() for r in rows if "tiny_day0" in r] == [
        ["knobs_flow/tiny_day0.yaml", "knobs_flow=tiny_day0", "[specialization]"]
    ]


def test_conf_wins_over_a_user_dir_as_info_searchpath_says(tmp_path):
    """Hydra searches hydra.searchpath after the primary config's dir: a same-named board in a user
    dir does not replace conf/'s, and `--info searchpath` lists conf/ first."""
    from compiler.introspect import show_info

    (tmp_path / "board").mkdir()
    text = (CONF_DIR / "board" / "0603_H100.yaml").read_text(encoding="utf-8")
    (tmp_path / "board" / "0603_H100.yaml").write_text(text.replace("0603_H100.jpg", "USER.jpg"))
    composer = Composer(searchpath=[tmp_path])
    board = composer.compose(parse_overrides(["flow=day1"])).config["board"]
    assert board["real_image_filename"] == "input_real_image/0603_H100.jpg"
    lines = show_info("searchpath", [], composer=composer).splitlines()
    assert lines[1].strip() == f"file://{CONF_DIR}" and lines[2].strip() == f"file://{tmp_path.resolve()}"
