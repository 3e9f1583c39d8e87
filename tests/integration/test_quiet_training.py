"""What training shows: one line per epoch and the metrics table, in a real kernel and from the CLI.

Everything else (Lightning's tips and info lines, warnings, wandb's banner and summary) belongs
in the run's ``train.log``; ``FACTORY_VERBOSE=1`` shows it again. wandb is left unsilenced here
(the suite's WANDB_SILENT removed) so its chatter is really there to hide.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.conftest import script_env
from tests.integration.helpers import cell_outputs, live_kernel, run_dirs, run_script

pytest.importorskip("jupyter_client")


pytestmark = pytest.mark.slow

TINY = ["experiment=fraud_detection", "data.source.rows=3000", "trainer.max_epochs=2", "data.batch_size=512"]
NOISE = ("Tip", "wandb", "Restoring states", "Warning", "warn", "GPU available", "deprecated")
EPOCH = re.compile(r"^epoch [12]/2  train/loss \d\.\d{4}  .*val/loss \d\.\d{4}.*\(\d+\.\d s\)$")


def _outputs(client, code: str) -> list[dict]:
    return cell_outputs(client, code, timeout=300)


def _text(output: dict) -> str:
    return output.get("text", "") + output.get("data", {}).get("text/plain", "") + "".join(output.get("traceback", []))


def _train(overrides: list[str]) -> str:
    return (f"result = factory.train(factory.compose('train', {overrides!r}))\n"
            "print(len(logging.getLogger().handlers), len(logging.getLogger('pytorch_lightning').handlers), "
            "str(result.run_dir), file=sys.stderr)")


@pytest.fixture
def client(tmp_path):
    env = script_env(tmp_path)
    env.pop("WANDB_SILENT", None)
    env.pop("FACTORY_VERBOSE", None)
    with live_kernel(env=env, cwd=str(tmp_path)) as client:
        yield client


def test_kernel_training_shows_epochs_and_table_and_logs_the_rest(client):
    before = _outputs(client, "import logging, os, sys, factory, pytorch_lightning\n"
                              "print(len(logging.getLogger().handlers), len(logging.getLogger('pytorch_lightning').handlers))")
    quiet = _outputs(client, _train(TINY))  # logger=wandb, offline: the default
    *shown, handlers = quiet
    assert handlers["name"] == "stderr"  # the test's own print: how many handlers are left, the run dir
    roots, lightning, run_dir = handlers["text"].split()
    assert f"{roots} {lightning}" == before[0]["text"].strip(), "a run left logging handlers behind"

    streams = [o for o in shown if o["type"] == "stream"]
    assert {o["name"] for o in streams} == {"stdout"}, shown
    lines = "".join(o["text"] for o in streams).splitlines()
    assert len(lines) == 2 and all(EPOCH.match(line) for line in lines), lines
    table = "".join(_text(o) for o in shown if o["type"] == "display_data")
    assert "fraud_detection: completed" in table and "auroc" in table and f"run: {run_dir}" in table
    assert [o["type"] for o in shown] == ["stream", "stream", "display_data", "display_data"], shown
    everything = "".join(_text(o) for o in shown)
    assert not [word for word in NOISE if word in everything], everything

    log = (Path(run_dir) / "train.log").read_text()
    for expected in ("Tip", "Restoring states", "wandb: ", "[py.warnings][WARNING]", "epoch 2/2",
                     "Trainable params"):
        assert expected in log, expected
    assert list((Path(run_dir) / "wandb").glob("offline-run-*/*.wandb"))

    # Verbose: the library lines are back on the console (and still in the log).
    verbose = _outputs(client, "os.environ['FACTORY_VERBOSE'] = '1'\n" + _train([*TINY, "logger=csv"]))
    # The kernel may merge the test's print into the same stderr output as the library's lines.
    errors = "".join(o["text"] for o in verbose if o["type"] == "stream" and o["name"] == "stderr")
    roots, lightning, run_dir = errors.splitlines()[-1].split()
    assert f"{roots} {lightning}" == before[0]["text"].strip()
    assert "Restoring states" in errors and "GPU available" in errors
    assert "Restoring states" in (Path(run_dir) / "train.log").read_text()

    # An error inside a quiet run still shows (here the monitored metric the model never logs).
    failed = _outputs(client, "os.environ['FACTORY_VERBOSE'] = '0'\n"
                              f"factory.train(factory.compose('train', {[*TINY, 'logger=csv', 'monitor.metric=val/nope']!r}))")
    assert failed[-1]["type"] == "error" and "val/nope" in failed[-1]["evalue"], failed


def test_cli_prints_epoch_lines_the_table_and_the_run(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_SILENT")
    result = run_script(tmp_path, "train.py", *TINY)  # logger=wandb, offline
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stderr == ""
    (run_dir,) = run_dirs(tmp_path)
    lines = result.stdout.splitlines()
    assert all(EPOCH.match(line) for line in lines[:2]), lines
    assert lines[2].strip() == "fraud_detection: completed"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    rows = [line for line in lines[3:-1] if line.startswith("│")]
    assert len(rows) == len(metrics["test"])  # one row per metric, nothing else between the boxes
    assert all(line[0] in "┏┃┡│└" for line in lines[3:-1]), lines
    assert lines[-1] == f"run: {run_dir}"
    log = (run_dir / "train.log").read_text()
    assert "Restoring states" in log and "wandb: " in log and "py.warnings" in log
