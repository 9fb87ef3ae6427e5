"""Setup and finetune inputs: the glass data zip, iteration hygiene, the checkpoint's size and its storage."""

from __future__ import annotations

from compiler.errors import Diagnostic
from compiler.rules.registry import Config, err, finetune_scheduled, gib, rule, warn

_HYGIENE_FIELDS = {
    "trainer.save_iter": "checkpoint.save_iter",
    "trainer.validation_iter": "trainer.validation_iter",
    "trainer.logging_iter": "trainer.logging_iter",
}


@rule(
    "A35 A36 A37",
    "error warning",
    "finetune iteration hygiene of cookbooks.ag_config (save/validation/logging vs max_iter)",
)
def _iterations(config: Config, explicit: set[str]) -> list[Diagnostic]:
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
            warn(
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


@rule("A4", "error", "setup for glass needs knobs.uc3_zip_url_root (the prefix holding mobile_screen.zip)")
def _uc3(config: Config, explicit: set[str]) -> list[Diagnostic]:
    knobs = config["knobs"]
    if "uc3_zip_url_root" not in knobs:
        return []
    value = knobs["uc3_zip_url_root"]
    if not value:
        root = config["dig_url_root"]
        return [
            err(
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
            err(
                "knobs.uc3_zip_url_root",
                "must be the prefix that contains mobile_screen.zip, not the file",
                value,
                value.rstrip("/").rsplit("/", 1)[0],
                "A4",
            )
        ]
    return []


@rule("A29", "error", "pretrained_model_sizes with 14B needs storage_large >= 300Gi")
def _pretrained_storage(config: Config, explicit: set[str]) -> list[Diagnostic]:
    knobs = config["knobs"]
    if "14B" in str(knobs.get("pretrained_model_sizes", "")).split() and gib(knobs["storage_large"]) < 300:
        return [
            err(
                "knobs.storage_large",
                "is too small for the 14B checkpoint (~64 GB more)",
                knobs["storage_large"],
                ">= 300Gi",
                "A29",
            )
        ]
    return []


@rule(
    "A23", "error warning", "model_size must match the checkpoint (shipped and freshly trained ones are 2B)"
)
def _model_size(config: Config, explicit: set[str]) -> list[Diagnostic]:
    knobs = config["knobs"]
    if knobs.get("model_size") == "14b":
        if finetune_scheduled(config):
            return [
                err(
                    "knobs.model_size",
                    "finetuning trains a 2B model (experiment predict2_anomaly_gen_ddp_2b); "
                    "inference on it needs model_size=2b",
                    "14b",
                    "2b",
                    "A23",
                )
            ]
        return [
            warn(
                "knobs.model_size",
                "the shipped checkpoints are 2B; 14b only fits a 14B checkpoint you put "
                f"under models/{config['usecase']['key']}",
                "14b",
                "2b",
                "A23",
            )
        ]
    return []
