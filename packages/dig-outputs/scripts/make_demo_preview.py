"""Build a synthetic Day 0 texture run, preview it, and screenshot the preview to docs/preview-day0.png."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from dig_outputs.preview import build_preview
from dig_outputs.source import LocalRun
from dig_outputs.synthetic import RunSpec, build_run, golden_workflow
from dig_outputs.workflow import read_workflow

REPO = Path(__file__).resolve().parents[3]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
RUN_NAME = "texture_defect_gen_day0-1a2b3c4d"  # the stamping rule's shape: <flow>-<8 hex>


def screenshot(index: Path, png: Path, width: int = 1180) -> None:
    """Full-page screenshot of `index` in headless chromium, palette-quantised to keep the PNG small."""
    from PIL import Image
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": width, "height": 800})
        page.goto(index.as_uri(), wait_until="load")
        broken = page.evaluate(
            "Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).length"
        )
        if broken:
            raise SystemExit(f"{broken} image(s) failed to load in {index}")
        png.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(png), full_page=True)
        browser.close()
    with Image.open(png) as im:
        im.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(png, optimize=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--png", default=str(REPO / "docs" / "preview-day0.png"), help="screenshot to write")
    ap.add_argument("--work", help="keep the synthetic run and preview here (default: a temp dir)")
    ap.add_argument("--samples", type=int, default=6)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="dig-demo-") as tmp:
        work = Path(args.work) if args.work else Path(tmp)
        run_dir = work / "runs" / RUN_NAME
        # 320x240 crops: big enough to read the parts, small enough for a quick demo; every 7th
        # crop has no AnomalyGen output and every 5th defect mask is absent, as in real partial runs.
        build_run(
            run_dir,
            "day0",
            RunSpec(name=RUN_NAME, size=(320, 240), per_cell=4, drop_anomaly_every=7, drop_mask_every=5),
        )
        source = LocalRun(run_dir, RUN_NAME)
        # The temp path would make the committed PNG change on every regeneration.
        source.where = "synthetic run (packages/dig-outputs/scripts/make_demo_preview.py)"
        result = build_preview(
            source, read_workflow(golden_workflow("day0")), work / "preview", samples=args.samples, force=True
        )
        screenshot(result.index, Path(args.png))
    print(Path(args.png).resolve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
