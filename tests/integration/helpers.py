"""Small helpers shared by integration tests."""
from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Iterator

from tests.conftest import REPO, script_env

# Tiny, fast settings for the fraud experiment.
FAST_FRAUD = ["experiment=fraud_detection", "logger=csv", "data.source.rows=3000", "trainer.max_epochs=2",
              "data.batch_size=512"]


#: A 1-epoch diagnosis run: the smallest real model most registry and serving tests start from.
TINY_DIAGNOSIS = ["experiment=diagnosis", "logger=csv", "trainer.max_epochs=1", "baseline=null"]


def trained_run(root: Path, overrides: list[str] = TINY_DIAGNOSIS) -> Path:
    """Train ``overrides`` in this process with ``FACTORY_ROOT=root``; the completed run's directory."""
    import pytest

    import factory

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FACTORY_ROOT", str(root))
        result = factory.train(factory.compose("train", overrides))
    assert result.status == "completed"
    return result.run_dir


def run_script(tmp_path: Path, script: str, *overrides: str, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run ``scripts/<script>`` as a user would, from ``tmp_path``, outputs under it."""
    return subprocess.run([sys.executable, str(REPO / "scripts" / script), *overrides], capture_output=True,
                          text=True, env=script_env(tmp_path), cwd=tmp_path, timeout=timeout)


def run_dirs(root: Path) -> list[Path]:
    return sorted(p.parent for p in (root / "outputs").rglob("run.json"))


def manifest(run_dir: Path) -> dict:
    return json.loads((run_dir / "run.json").read_text())


def failed_run(root: Path, overrides: list[str], error: type, match: str) -> str:
    """Train ``overrides`` in process and check it failed as bad input should: ``error`` in one line
    matching ``match``, one run directory whose run.json says failed, and no metrics.json."""
    import pytest

    from factory import compose
    from factory.training.recipe import run

    with pytest.raises(error, match=match) as info:
        run(compose("train", overrides))
    assert len(str(info.value).splitlines()) == 1
    (run_dir,) = run_dirs(root)
    record = manifest(run_dir)
    assert record["status"] == "failed"
    assert record["error"].startswith(error.__name__)
    assert not (run_dir / "metrics.json").exists()
    return str(info.value)


def cell_outputs(client, code: str, timeout: float = 300) -> list[dict]:
    """Run ``code`` in a live kernel (a jupyter_client client): the outputs a notebook would keep,
    as dicts with ``type`` (execute_result, display_data, stream, error) and the message content."""
    msg_id = client.execute(code)
    outputs = []
    while True:
        message = client.get_iopub_msg(timeout=timeout)
        if message["parent_header"].get("msg_id") != msg_id:
            continue
        kind, content = message["msg_type"], message["content"]
        if kind == "status" and content["execution_state"] == "idle":
            return outputs
        if kind in ("execute_result", "display_data", "stream", "error"):
            outputs.append({"type": kind, **content})


@contextlib.contextmanager
def live_kernel(**options) -> Iterator:
    """A client of the project's ``factory`` kernel, started with ``options`` (env, cwd), shut down after."""
    import jupyter_client

    from factory.reports.kernel import ensure_kernel

    manager, client = jupyter_client.manager.start_new_kernel(kernel_name=ensure_kernel(), **options)
    try:
        yield client
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def visible_text(html: str) -> str:
    """The page's text as a reader sees it (no style, script or image data)."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    for hidden in soup(["style", "script", "head"]):
        hidden.decompose()
    return re.sub(r"\s+", " ", soup.get_text())


def check_reads_as_a_document(html: str, first_line: str, run_dir: Path) -> None:
    """A run report's page: no code, NaN, figure repr or traceback; ``first_line`` (a regex) in its summary,
    the run's whole command and config folded in a ``<details>``, the page's own style, embedded figures."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    assert not soup.select(".jp-CodeCell .jp-InputArea"), "a code cell shows"
    assert "run_dir = " not in html  # neither parameters cell, papermill's injected one included
    text = visible_text(html)
    for unwanted in ("NaN", "<Figure size", "Traceback", "NotebookNode"):
        assert unwanted not in text, unwanted
    assert re.search(first_line, text), text[:1500]
    assert re.search(r"ran \d{4}-\d\d-\d\d \d\d:\d\d UTC, commit", text)
    details = soup.find("details")
    assert details is not None and details.summary.get_text() == "Command, lineage and config"
    command = " ".join(json.loads((run_dir / "run.json").read_text())["command"])
    assert command in details.get_text() and "max_epochs: 2" in details.get_text()  # not cut
    assert "overflow-x: auto" in html and soup.find_all("img")  # the page's own style; figures embedded
