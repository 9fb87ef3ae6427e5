"""Cross-field rules: what spec/failure_modes.md §A says a compiler can catch, each with its severities.

The registry (RULES, `@rule`, check_rules) is in `registry`; the rules themselves are grouped by
theme; check_rules runs the themes in this order:

- `anomalies`: defect modes, the anomaly taxonomy against the checkpoint and the board, the ROI mode
- `checkpoints`: the glass data zip, finetune iteration hygiene, checkpoint size and storage
- `day1`: real-photo alignment
- `render`: render and crop cookbooks, pod sizing
- `inputs`: the endpoint, free-text values, the run name, URLs, the IC-only board
"""

from __future__ import annotations

from compiler.rules import anomalies, checkpoints, day1, inputs, render
from compiler.rules.registry import MODEL_ID, RULES, ConfigRule, check_rules, finetune_scheduled, rule

# Importing the themes registered their rules; run them theme by theme in this order (a stable sort
# keeps each theme's own order).
_THEMES = [m.__name__ for m in (anomalies, checkpoints, day1, render, inputs)]
RULES.sort(key=lambda entry: _THEMES.index(entry.fn.__module__))

__all__ = ["MODEL_ID", "RULES", "ConfigRule", "check_rules", "finetune_scheduled", "rule"]
