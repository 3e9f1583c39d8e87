"""Lineage end to end: a tiny run on a CSV file, registered (and exported), promoted, a file scored; then
``scripts/lineage.py`` shows the chain both ways, back to the CSV's sha256 and on to the score table."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import factory
from factory import registry
from factory.serving.score import score_files
from tests.integration.helpers import run_script

TINY = ["data=files", "data.source.target=label", "task_name=fraud", "logger=csv", "trainer.max_epochs=1",
        "baseline=null"]


def _table(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"amount": rng.gamma(2.0, 50.0, rows), "hour": rng.integers(0, 24, rows),
                          "channel": rng.choice(["web", "shop", "phone"], rows)})
    frame["label"] = (frame["amount"] + rng.normal(0, 40, rows) > 120).astype(int)
    return frame


@pytest.fixture(scope="module")
def chain(tmp_path_factory) -> dict:
    """FACTORY_ROOT with one run of 300 rows, ``fraud@v1`` (production, exported) and a scored file."""
    root = tmp_path_factory.mktemp("lineage")
    source = root / "transactions.csv"
    _table(300, 0).to_csv(source, index=False)
    new = root / "new.csv"
    _table(20, 1).drop(columns="label").to_csv(new, index=False)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FACTORY_ROOT", str(root))
        result = factory.train(factory.compose("train", [*TINY, f"data.source.path={source}"]))
        assert result.status == "completed"
        version = registry.register(result.run_dir, "fraud", export=True)
        registry.promote(version.name, version.version, "production")
        score_files(registry.load("fraud@production", backend="onnx"), str(new), root / "scored")
    return {"root": root, "run_id": result.run_dir.name, "source": source, "scored": root / "scored"}


def _lineage(chain: dict, *args: str):
    return run_script(chain["root"], "lineage.py", *args, timeout=120)


def _walk(jobs: list[dict], way: str) -> tuple[set[str], dict[str, dict]]:
    """Every job name and dataset (name -> node) in a ``trace`` branch."""
    names, datasets = set(), {}
    for job in jobs:
        names.add(job["job"])
        for d in job["datasets"]:
            datasets[d["name"]] = d
            more_names, more = _walk(d.get(way) or [], way)
            names |= more_names
            datasets.update(more)
    return names, datasets


def test_a_model_version_leads_back_to_its_source_file_and_on_to_its_scores(chain):
    shown = _lineage(chain, "fraud@production", "--json")
    assert shown.returncode == 0, shown.stderr
    tree = json.loads(shown.stdout)
    assert tree["dataset"]["name"] == "fraud@v1" and tree["dataset"]["version"].startswith("sha256:")
    jobs, upstream = _walk(tree["upstream"], "upstream")
    assert {"register.fraud", "train.fraud"} <= jobs
    assert f"run:{chain['run_id']}" in upstream
    source = upstream[str(chain["source"])]  # the CSV, by content: what sha256sum prints
    assert source["namespace"] == "file"
    assert source["version"] == "sha256:" + hashlib.sha256(chain["source"].read_bytes()).hexdigest()
    jobs, downstream = _walk(tree["downstream"], "downstream")
    assert {"export.fraud", "score.fraud"} <= jobs
    assert downstream[str(chain["scored"])]["rows"] == 20
    assert any(name.endswith("model.onnx") for name in downstream)


def test_a_run_id_shows_what_it_came_from_and_what_was_made_from_it(chain):
    shown = _lineage(chain, chain["run_id"])
    assert shown.returncode == 0, shown.stderr
    text = " ".join(shown.stdout.split())  # the tree wraps long lines
    for part in ("came from", "made from it", "train.fraud COMPLETE", "register.fraud COMPLETE", "fraud@v1",
                 "score.fraud COMPLETE", "transactions.csv", "sha256:"):
        assert part in text, part


def test_an_unknown_name_is_one_line_and_exit_2(chain):
    shown = _lineage(chain, "no-such-run")
    assert shown.returncode == 2 and shown.stdout == ""
    assert shown.stderr.count("\n") == 1 and "no event names 'no-such-run'" in shown.stderr
    unknown_model = _lineage(chain, "nothing@production")
    assert unknown_model.returncode == 2 and "no model named 'nothing'" in unknown_model.stderr


def test_a_failed_run_records_fail_with_its_error_and_what_it_was_reading(tmp_path):
    from factory.errors import DataError
    from factory.governance import lineage_graph as graphs
    from factory.training.recipe import run

    source = tmp_path / "few.csv"
    _table(50, 2).to_csv(source, index=False)
    with pytest.raises(DataError, match="nope"):
        run(factory.compose("train", [*TINY, f"data.source.path={source}", "data.source.target=nope"]))
    graph = graphs.build(graphs.read_events())
    (run_id,) = [name for (_, name) in graph.datasets if name.startswith("run:")]
    (training,) = graphs.trace(graph, ("factory", run_id))["upstream"]
    assert training["job"] == "train.fraud" and training["state"] == "FAIL"
    assert training["error"].startswith("DataError: ") and "nope" in training["error"]
    assert [d["name"] for d in training["datasets"]] == [str(source)]


def test_a_report_reads_its_runs_and_writes_its_html_or_fails(tmp_path):
    from factory.governance import lineage_graph as graphs
    from factory.reports import ReportFailed, run_report
    from factory.reports.spec import ReportSpec
    from tests.conftest import REPO

    notebook = REPO / "tests" / "notebooks" / "tiny_report.ipynb"
    run_dir = tmp_path / "outputs" / "x" / "2026-01-01_00-00-00_abcdef"
    run_dir.mkdir(parents=True)
    (run_dir / "run.json").write_text(json.dumps({"run_id": run_dir.name}))
    done = run_report(ReportSpec(name="tiny", notebook=notebook, parameters={"run_dir": str(run_dir)}, timeout=60),
                      tmp_path / "reports")
    with pytest.raises(ReportFailed):
        run_report(ReportSpec(name="tiny", notebook=notebook, parameters={"run_dir": str(run_dir), "fail": True},
                              timeout=60), tmp_path / "reports")
    graph = graphs.build(graphs.read_events())
    completed, failed = graphs.trace(graph, ("factory", f"run:{run_dir.name}"))["downstream"]
    assert (completed["job"], completed["state"], failed["state"]) == ("report.tiny", "COMPLETE", "FAIL")
    assert str(done.html) in [d["name"] for d in completed["datasets"]]
    assert failed["error"]


def test_a_reader_that_stops_early_ends_it_quietly(tmp_path):
    import subprocess
    import sys

    from factory.governance import lineage
    from tests.conftest import REPO, script_env

    with lineage.job("register.fraud", inputs=[lineage.run("r1")]) as job:
        job.outputs.append(lineage.model_version("fraud", 1))
    for args, code in ((["--json"], 141), ([], 1)):  # the tree goes through rich, which exits 1 quietly itself
        shown = subprocess.Popen([sys.executable, str(REPO / "scripts" / "lineage.py"), "fraud@v1", *args],
                                 cwd=tmp_path, env=script_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        shown.stdout.close()  # `| head` that has read enough
        assert shown.wait(timeout=120) == code
        assert shown.stderr.read() == b""
