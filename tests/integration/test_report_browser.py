"""Every report read in headless Chromium as a reader sees it: the checks of issue 11's "Reports a reader
would send on". One build of tiny real runs and reports serves every page's test."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.browser import chromium_or_skip, inspect, reader_problems
from tests.integration.helpers import check_reads_as_a_document, visible_text
from tests.report_pages import build

pytestmark = pytest.mark.slow

PAGES = ["run_report_binary", "run_report_multiclass", "compare_runs", "sweep_report", "index"]


@pytest.fixture(scope="module")
def browser() -> str:
    return chromium_or_skip()


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory, browser: str) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("report-pages")
    with pytest.MonkeyPatch.context() as patch:  # the autouse isolation is function-scoped: repeat it here
        for name in ("WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR"):
            patch.setenv(name, str(root / "wandb-home"))
        patch.setenv("FACTORY_CACHE_DIR", str(root / "cache"))
        return build(root)


@pytest.mark.parametrize("page", PAGES)
def test_a_reader_sees_a_document(pages: dict[str, Path], browser: str, page: str):
    seen = inspect(pages[page], browser)
    assert reader_problems(seen) == [], pages[page]
    if page != "index":  # the index is a plain table; every report draws figures
        assert seen["images"], f"{page}: no figure on the page"


def test_the_multiclass_run_report_reads_as_a_document(pages: dict[str, Path]):
    """What tests/integration/test_run_report_document.py checks of the other tasks, on the digits page."""
    html = pages["run_report_multiclass"]
    entry = next(e for e in json.loads((html.parents[2] / "index.json").read_text())["runs"]
                 if html.relative_to(html.parents[2]).as_posix() == e["html"])
    page = html.read_text()
    check_reads_as_a_document(page, r"completed: test accuracy \d\.\d{1,4}", Path(entry["parameters"]["run_dir"]))
    assert page.count("data:image/png;base64") >= 5  # curves, confusion matrix, ROC, PR, calibration
    assert re.search(r"train ?1,1\d\d ?\d+ \(\d+\.\d%\)", visible_text(page))  # rows and class balance per split


def test_the_checks_catch_what_a_reader_should_not_see(tmp_path: Path, browser: str):
    """The same checks fail on a page with each fault planted: they are not vacuous."""
    page = tmp_path / "bad.html"
    page.write_text(
        '<html><body><div class="jp-MarkdownCell"><div class="jp-InputArea">prose</div></div>'
        '<div class="jp-CodeCell"><div class="jp-InputArea">print(1)</div></div><img src="missing.png">'
        '<table style="width:3000px"><tr><td>wide</td></tr></table>'
        "<pre>Traceback (most recent call last)</pre><p>loss NaN</p><p>&lt;Figure size 450x450 with 1 Axes&gt;</p>"
        '<div style="overflow-x:auto"><table style="width:3000px"><tr><td>scrolls</td></tr></table></div>'
        "</body></html>")
    problems = reader_problems(inspect(page, browser))
    assert len(problems) == 6, problems
    assert problems[0] == "1 code cells are visible"  # the Markdown cell's input area is prose, not code
    assert "table right=3008" in problems[2] and problems[2].count("table") == 1  # the scrolling one is fine
