"""One-line meaning of each knob (from spec/knobs.md), written into the config schema as `description`."""

from __future__ import annotations

KNOB_MEANINGS: dict[str, str] = {
    "workflow_name": "OSMO workflow name (not the run name)",
    "exec_timeout": "OSMO exec timeout of the whole workflow",
    "queue_timeout": "OSMO queue timeout",
    "use_pretrained_checkpoint": "true: infer with the shipped checkpoint; false: finetune first (adds finetune-job)",
    "use_usd2roi_day1": "render + MI-register the board to the real photo (always on upstream; do not flip)",
    "checkpoint_step": "iteration of iter_<9 digits>.pt to load (fallback when a fresh finetune picks its best)",
    "num_sdg": "total generated (SDG) defect images across all defects",
    "default_spatial_dependency": "AnomalyGen ROI mode: free (whole image), text (ROI prompt), cad (cad_mask)",
    "roi_prompt": "free-text ROI prompt for default_spatial_dependency=text",
    "model_size": "AnomalyGen model size; must match the checkpoint",
    "anomaly_types_json": "[material, defect] pairs to generate; must match the checkpoint's ag_config",
    "anomalygen_image": "container image of the AnomalyGen tasks",
    "augmentation_image": "container image of the image-edit task",
    "usd2roi_image": "container image of the USD render / ROI crop tasks",
    "isaac_render_image": "container image of the structural Isaac render",
    "pretrained_image": "container image of the pretrained-model download",
    "render_patches": "scan-grid patches rendered (stage-1 cap): -1 every cell, N random cells",
    "crop_max_emit": "final crops per (material, scan cell) (stage-2 cap): '' cookbook cap, null no cap, N",
    "scene_filename": "USD scene basename searched under the board's assets",
    "real_image_filename": "real board photo (path under the assets root) the render is registered to",
    "defect_modes": "structural pose defects: all (cookbook flags) or a comma list of shift, tombstone, sideflip",
    "crop_offset": "pixels of margin around each structural component crop",
    "platform": "OSMO platform of every task",
    "pretrained_model_sizes": "space-separated model sizes to download (2B, 14B; 14B needs storage_large >= 300Gi)",
    "uc3_zip_url_root": "storage prefix holding mobile_screen.zip (glass setup)",
    "cpu": "CPUs of the setup tasks",
    "memory": "memory of the setup tasks",
    "storage": "disk of the setup tasks",
    "cpu_large": "CPUs of the large setup task",
    "memory_large": "memory of the large setup task",
    "storage_large": "disk of the large setup task (model download)",
}
_STAGES = {"render": "render", "augment": "image-edit", "infer": "inference", "train": "training"}
_RESOURCES = {
    "gpu": "GPUs",
    "cpu": "CPUs (derived from GPUs when unset)",
    "memory": "memory",
    "storage": "disk",
}
KNOB_MEANINGS.update(
    {
        f"{s}_{r}": f"{what} of the {stage} task"
        for s, stage in _STAGES.items()
        for r, what in _RESOURCES.items()
    }
)
