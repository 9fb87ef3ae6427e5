"""Day 1 real-photo alignment: the board's own photo, and the usd2roi switch."""

from __future__ import annotations

from compiler.errors import Diagnostic
from compiler.rules.registry import Config, rule, warn


@rule("A25", "warning", "Day 1 real-photo alignment: the real photo should be the board's own")
def _real_photo(config: Config, explicit: set[str]) -> list[Diagnostic]:
    knobs = config["knobs"]
    photo = knobs.get("real_image_filename")
    own = config["board"].get("real_image_filename")
    if photo and own and photo != own:
        return [
            warn(
                "knobs.real_image_filename",
                f"is not the photo of board '{config['board']['key']}'; "
                "registration (min_mi 0) would align to the wrong board without failing",
                photo,
                own,
                "A25",
            )
        ]
    return []


@rule("A27", "warning", "use_usd2roi_day1=false switches real-photo alignment to manual-ROI wiring")
def _usd2roi_flag(config: Config, explicit: set[str]) -> list[Diagnostic]:
    if config["knobs"].get("use_usd2roi_day1") is False:
        out = [
            warn(
                "knobs.use_usd2roi_day1",
                "=false drops the alignment render; use flow=day1_manual_roi for manual ROIs instead",
                False,
                "true",
                "A27",
            )
        ]
        # the knobs only the dropped usd2roi-day1 task reads: set, they would change nothing
        out += [
            warn(
                f"knobs.{k}",
                "has no effect: knobs.use_usd2roi_day1=false drops the usd2roi-day1 task, "
                "the only one that reads it",
                config["knobs"][k],
                "knobs.use_usd2roi_day1=true",
                "A27",
            )
            for k in ("usd2roi_image", "scene_filename", "real_image_filename")
            if k in explicit
        ]
        return out
    return []
