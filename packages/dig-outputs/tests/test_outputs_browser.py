"""The preview opened in Debian's chromium through Playwright: images load, table shape, screenshot artifact."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
from dig_outputs.columns import Row, choose, columns_for
from dig_outputs.preview import build_preview
from dig_outputs.source import LocalRun
from dig_outputs.synthetic import golden_workflow
from dig_outputs.workflow import read_workflow

CHROMIUM = "/usr/bin/chromium"
# Measured working here (ENVIRONMENT_NOTES.md); the extra flags keep chromium off the network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
ARTIFACTS = Path(__file__).resolve().parents[3] / "test-artifacts"

pytestmark = pytest.mark.browser


def cols(flow: str):
    wf = read_workflow(golden_workflow(flow))
    return columns_for(wf.layout, wf.stage_dirs)


@pytest.fixture(scope="module")
def browser():
    """A launched chromium, or the reason there is none (the test fails on it, never skips silently)."""
    if not Path(CHROMIUM).exists():
        if os.environ.get("DIG_SKIP_BROWSER") == "1":
            pytest.skip(f"DIG_SKIP_BROWSER=1 and no {CHROMIUM}")
        yield f"{CHROMIUM} is missing: apt-get install -y chromium (or set DIG_SKIP_BROWSER=1 to skip)"
        return
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:  # pragma: no cover - the test extra installs it
        yield f"python playwright is not installed: {exc}"
        return
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


def _need(browser):
    if isinstance(browser, str):
        pytest.fail(browser)
    return browser


def _expected_rows(flow: str, complete: list[str], n: int) -> list[str]:
    if flow == "structural":
        return [
            r.key for r in choose([Row(k, k, group=k.split("/")[0]) for k in complete], n, per_group=True)
        ]
    k = max(1, math.ceil(len(complete) / n))
    return complete[::k][:n]


@pytest.mark.parametrize("flow", ["day0", "good_image", "structural", "day1", "day1_manual_roi"])
def test_outputs_browser_preview(flow, runs, tmp_path, browser):
    b = _need(browser)
    run = runs[flow]
    result = build_preview(
        LocalRun(run.run_dir, run.run_dir.name), read_workflow(golden_workflow(flow)), tmp_path / "preview"
    )
    page = b.new_page(viewport={"width": 1280, "height": 900})
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    try:
        page.goto(result.index.as_uri(), wait_until="load")
        images = page.evaluate(
            "Array.from(document.images).map(i => ({src: i.getAttribute('src'), ok: i.complete, w: i.naturalWidth}))"
        )
        headers = page.eval_on_selector_all("#samples thead th", "els => els.map(e => e.textContent)")
        rows = page.eval_on_selector_all("#samples tbody tr", "els => els.map(e => e.dataset.sample)")
        blanks = page.eval_on_selector_all("#samples td.blank", "els => els.length")
        ARTIFACTS.mkdir(exist_ok=True)
        shot = ARTIFACTS / f"preview-{flow}.png"
        page.screenshot(path=str(shot), full_page=True)
    finally:
        page.close()
    assert images, "no images on the page"
    bad = [i for i in images if not (i["ok"] and i["w"] > 0)]
    assert not bad, f"images that did not load: {bad}"
    assert headers == ["Sample"] + [c.title for c in cols(flow)]
    assert rows == _expected_rows(flow, run.complete_rows, 8)
    assert len(images) + blanks == len(rows) * len(cols(flow))
    # Self-contained: the page and its images are the only things fetched, all from disk.
    assert requests and all(u.startswith("file://") for u in requests), requests
    assert shot.stat().st_size > 1000
