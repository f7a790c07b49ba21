"""The report in headless Chromium: it loads without console errors and every image decodes."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _mapping_fixtures import make_group
from _report_browser import check_page, find_chromium

from neuroenc.report import make_report

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(find_chromium() is None, reason="needs chromium (apt-get install chromium)"),
]


def _keep(screenshot: Path) -> None:
    """Copy the screenshot to $NEUROENC_SCREENSHOT_DIR when set (to look at it after the run)."""
    folder = os.environ.get("NEUROENC_SCREENSHOT_DIR")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        shutil.copy(screenshot, Path(folder) / screenshot.name)


def test_report_loads_in_chromium(tmp_path):
    results = make_group(3, warnings=["3 TRs trimmed"])
    layers = np.arange(9)
    metrics = pd.DataFrame({"metric": np.repeat(["entropy", "curvature"], 9), "layer": np.tile(layers, 2),
                            "value": np.concatenate([np.linspace(3, 1, 9), np.linspace(0.5, 1, 9)])})
    out = make_report(results, tmp_path / "report.html", n_boot=100, metrics=metrics)
    n_img = out.read_text().count("<img ")
    shot = tmp_path / "report-screenshot.png"
    info = check_page(out, shot)
    assert info["errors"] == []
    assert info["title"] == "neuroenc report: tiny-model on synthetic"
    assert len(info["images"]) == n_img >= 5
    for img in info["images"]:
        assert img["complete"] and img["naturalWidth"] > 0 and img["naturalHeight"] > 0, img
    # the screenshot is a full-page PNG, taller than one screen
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width == 1200 and height > 2000
    _keep(shot)


def test_browser_check_catches_broken_pages(tmp_path):
    """The check can fail: a missing image and a console error are reported."""
    page = tmp_path / "broken.html"
    page.write_text(
        '<!DOCTYPE html><html><head><meta charset="utf-8"><link rel="icon" href="data:,">'
        "<title>broken</title></head><body><img src=\"missing.png\" alt=\"gone\">"
        "<script>console.error('boom')</script></body></html>"
    )
    info = check_page(page, tmp_path / "broken.png")
    assert any("boom" in e for e in info["errors"])
    assert any("ERR_FILE_NOT_FOUND" in e for e in info["errors"])
    assert info["images"][0]["naturalWidth"] == 0
    assert (tmp_path / "broken.png").exists()
