"""reports/index.html: a count that reads right, and the columns the README promises (source runs,
factory version, git commit) beside status, time, parameters and links."""
from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from factory.reports import index


def entry(n: int, **changes) -> dict:
    """An index entry as factory.reports.execute writes one (provenance_of, then the result)."""
    record = {
        "id": f"compare_runs/2026-12-07_01-0{n}-00_abcdef", "name": "compare_runs", "run_id": f"2026-12-07_01-0{n}-00",
        "trigger": "manual", "started_at": f"2026-12-07T01:0{n}:00Z", "notebook": "notebooks/compare_runs.ipynb",
        "parameters": {"experiment": "diagnosis", "run_ids": []},
        "source_run_ids": ["2026-12-07_01-36-52_4ff3d6", "2026-12-07_01-37-00_aafd44"],
        "factory_version": "0.1.0", "git": {"commit": "edaa012" + "0" * 33, "dirty": n % 2 == 1},
        "status": "completed", "ended_at": None, "duration_s": 7.25,
        "ipynb": f"compare_runs/2026-12-07_01-0{n}-00/report.ipynb",
        "html": f"compare_runs/2026-12-07_01-0{n}-00/report.html", "error": None, "failing_cell": None}
    record.update(changes)
    return record


class _Table(HTMLParser):
    """The page's header cells, body rows (cell texts) and links."""

    def __init__(self, page: str):
        super().__init__()
        self.head, self.rows, self.links, self._cell, self._in = [], [], [], None, None
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        if tag == "tr":
            self.rows.append([])
        elif tag in ("th", "td"):
            self._cell, self._in = "", tag
        elif tag == "a":
            self.links.append(dict(attrs)["href"])

    def handle_endtag(self, tag):
        if tag in ("th", "td"):
            (self.head if self._in == "th" else self.rows[-1]).append(self._cell.strip())
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data


@pytest.mark.parametrize(("runs", "count"), [(0, "0 report runs"), (1, "1 report run,"), (2, "2 report runs")])
def test_the_count_reads_right(runs, count):
    page = index.render([entry(n) for n in range(runs)])
    assert count in page and "1 runs" not in page


def test_each_run_shows_its_source_runs_version_commit_and_links(tmp_path: Path):
    index.record(tmp_path, entry(1))
    index.record(tmp_path, entry(2, status="failed", error="cell 3 raised ValueError: <bad>", html=None))
    table = _Table((tmp_path / "index.html").read_text())
    assert table.head == list(index.COLUMNS)
    header = {name: i for i, name in enumerate(table.head)}
    failed, completed = [row for row in table.rows if row]  # newest first
    assert len(completed) == len(table.head)
    assert completed[header["source runs"]] == "2026-12-07_01-36-52_4ff3d62026-12-07_01-37-00_aafd44"
    assert completed[header["factory"]] == "0.1.0" and completed[header["trigger"]] == "manual"
    assert completed[header["commit"]] == "edaa012000 +dirty" and failed[header["commit"]] == "edaa012000"
    assert completed[header["duration"]] == "7.2 s"
    assert completed[header["parameters"]] == "experiment=diagnosis"  # the ones set
    assert completed[header["started"]] == "2026-12-07 01:01:00 UTC"
    assert failed[header["error"]] == "cell 3 raised ValueError: <bad>"  # escaped in the page, read back as text
    # links are relative to reports/, where index.html is: they open the files
    for link in table.links:
        assert not re.match(r"^(/|[a-z]+:)", link), link
    assert "compare_runs/2026-12-07_01-01-00/report.html" in table.links
    assert [e["id"] for e in json.loads((tmp_path / "index.json").read_text())["runs"]] == [
        entry(2)["id"], entry(1)["id"]]


def test_an_entry_without_provenance_still_renders():
    page = index.render([{"id": "x/1", "name": "x", "status": "running"}])  # a run recorded before its end
    row = [r for r in _Table(page).rows if r][0]
    assert row[:2] == ["x", "running"] and len(row) == len(index.COLUMNS)
