"""The exported page: code hidden by default (and the cells that show nothing dropped), shown on request;
wide outputs scroll and figures fit the page."""
from __future__ import annotations

from pathlib import Path

import nbformat
from bs4 import BeautifulSoup
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from factory.reports.execute import HTML_STYLE, export_html


def _executed(path: Path) -> Path:
    """A notebook as papermill leaves it: parameters, injected parameters, a cell with a table output."""
    nb = new_notebook(cells=[
        new_markdown_cell("# Title"),
        new_code_cell("run_dir = None", metadata={"tags": ["parameters"]}),
        new_code_cell('run_dir = "outputs/x"', metadata={"tags": ["injected-parameters"]}),
        new_code_cell("%matplotlib inline\nimport pandas as pd"),
        new_code_cell("frame", outputs=[new_output("execute_result", execution_count=1,
                                                   data={"text/html": "<table><tr><td>wide</td></tr></table>"})]),
    ], metadata={"language_info": {"name": "python"}})
    nbformat.write(nb, path)
    return path


def _code_inputs(html: str) -> list:
    return BeautifulSoup(html, "html.parser").select(".jp-CodeCell .jp-InputArea")


def test_inputs_hidden_by_default_and_empty_code_cells_dropped(tmp_path: Path):
    html = export_html(_executed(tmp_path / "r.ipynb"), tmp_path / "r.html").read_text()
    assert _code_inputs(html) == []
    soup = BeautifulSoup(html, "html.parser")
    assert len(soup.select(".jp-CodeCell")) == 1  # only the cell with an output
    assert "outputs/x" not in html and "run_dir" not in html  # the injected parameters never show
    assert "wide" in soup.get_text() and "Title" in soup.get_text()


def test_inputs_shown_when_asked(tmp_path: Path):
    html = export_html(_executed(tmp_path / "r.ipynb"), tmp_path / "r.html", hide_input=False).read_text()
    assert len(_code_inputs(html)) == 4 and "outputs/x" in html


def test_page_style_lets_wide_outputs_scroll_and_images_fit(tmp_path: Path):
    html = export_html(_executed(tmp_path / "r.ipynb"), tmp_path / "r.html").read_text()
    head = html[:html.index("</head>")]
    assert HTML_STYLE in head  # last in <head>: it wins over JupyterLab's own rules
    assert "overflow-x: auto" in HTML_STYLE and "img { max-width: 100%" in HTML_STYLE
