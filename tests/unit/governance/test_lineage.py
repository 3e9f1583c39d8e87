"""OpenLineage events through the client's file transport, read back as a graph (factory.governance.lineage)."""
from __future__ import annotations

import hashlib
import json
import logging
import subprocess
import sys
import time
import uuid
from datetime import datetime
from pathlib import Path

import pytest

from factory.governance import lineage, lineage_graph


def events(root: Path) -> list[dict]:
    """Every event file under ``root/lineage``, parsed, in the order written."""
    return [json.loads(p.read_text()) for p in sorted((root / "lineage").glob("event-*.json"))]


def check_run_event(event: dict) -> None:
    """The fields OpenLineage's RunEvent schema requires, with their formats."""
    assert event["eventType"] in ("START", "RUNNING", "COMPLETE", "ABORT", "FAIL", "OTHER")
    datetime.fromisoformat(event["eventTime"])
    assert event["producer"].startswith("https://") and event["schemaURL"].startswith("https://openlineage.io/spec/")
    uuid.UUID(event["run"]["runId"])
    assert event["job"]["namespace"] == "factory" and event["job"]["name"]
    for side in ("inputs", "outputs"):
        for dataset in event[side]:
            assert dataset["namespace"] and dataset["name"]
            for facet in dataset["facets"].values():
                assert facet["_producer"] and facet["_schemaURL"].startswith("https://openlineage.io/spec/")


def test_start_and_complete_are_openlineage_run_events(tmp_path):
    source = tmp_path / "in.csv"
    source.write_text("a,b\n1,x\n2,y\n")
    job = lineage.Job("train.fraud", inputs=[lineage.snapshot("abc123", {"a": "numeric", "b": "categorical"}, 2)])
    job.start(wait=False)  # the training path: returns at once, still written before COMPLETE
    job.inputs += lineage.source_files(str(source))
    job.outputs += [lineage.run("2026-12-07_run"), lineage.file(source, content=True)]
    job.complete()

    start, complete = events(tmp_path)
    for event in (start, complete):
        check_run_event(event)
        assert event["run"]["runId"] == job.run_id and event["job"]["name"] == "train.fraud"
    assert (start["eventType"], complete["eventType"]) == ("START", "COMPLETE")
    assert [d["name"] for d in start["inputs"]] == ["snapshot:abc123"] and start["outputs"] == []
    snapshot, csv = complete["inputs"]
    assert snapshot["facets"]["version"]["datasetVersion"] == "abc123"
    assert snapshot["facets"]["schema"]["fields"][1] == {"name": "b", "type": "categorical", "fields": []}
    digest = "sha256:" + hashlib.sha256(source.read_bytes()).hexdigest()  # what sha256sum prints
    assert (csv["namespace"], csv["name"], csv["facets"]["version"]["datasetVersion"]) == ("file", str(source), digest)
    assert [(d["namespace"], d["name"]) for d in complete["outputs"]] == [("factory", "run:2026-12-07_run"),
                                                                          ("file", str(source))]


def test_a_failing_job_emits_fail_with_its_error_masked_and_raises(tmp_path):
    with pytest.raises(ValueError, match="boom"):
        with lineage.job("score.fraud", inputs=[lineage.model_version("fraud", 3, "ab" * 32)]):
            raise ValueError("boom reading postgresql://app:hunter2@db/x")
    start, fail = events(tmp_path)
    check_run_event(fail)
    assert (start["eventType"], fail["eventType"]) == ("START", "FAIL")
    message = fail["run"]["facets"]["errorMessage"]
    assert message["programmingLanguage"] == "python" and message["message"].startswith("ValueError: boom")
    assert "hunter2" not in json.dumps(fail)
    assert fail["inputs"][0]["name"] == "fraud@v3"


def test_a_failing_transport_never_raises(tmp_path, caplog):
    (tmp_path / "lineage").write_text("a file where the events' folder should be")
    with caplog.at_level(logging.WARNING, logger="factory.governance.lineage"):
        with lineage.job("register.fraud") as job:  # the body still runs, and the job ends normally
            job.outputs.append(lineage.model_version("fraud", 1))
    assert any("not recorded" in r.getMessage() and "register.fraud" in r.getMessage() for r in caplog.records)


def test_openlineage_configuration_wins_and_disabled_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENLINEAGE_DISABLED", "true")
    assert lineage.configured()
    with lineage.job("report.run"):
        pass
    assert not (tmp_path / "lineage").exists()
    monkeypatch.delenv("OPENLINEAGE_DISABLED")
    target = tmp_path / "elsewhere.jsonl"  # OpenLineage's own variables: an append-mode file transport
    monkeypatch.setenv("OPENLINEAGE__TRANSPORT__TYPE", "file")
    monkeypatch.setenv("OPENLINEAGE__TRANSPORT__LOG_FILE_PATH", str(target))
    monkeypatch.setenv("OPENLINEAGE__TRANSPORT__APPEND", "true")
    with lineage.job("report.run", inputs=[lineage.run("r1")]):
        pass
    assert not (tmp_path / "lineage").exists()
    read = lineage_graph.read_events(target)  # JSON lines read back as well
    assert [e["eventType"] for e in read] == ["START", "COMPLETE"]


def test_the_graph_walks_from_a_model_version_to_source_files_and_on_to_its_scores(tmp_path):
    source = tmp_path / "train.csv"
    source.write_text("a\n1\n")
    train = lineage.Job("train.fraud", lineage.training_run_id("r1", 1), outputs=[lineage.run("r1")])
    train.start()
    curate = lineage.Job("curate.fraud", parent=train, inputs=lineage.source_files(str(source)),
                         outputs=[lineage.snapshot("snap1")])
    curate.start()
    curate.complete()
    train.inputs.append(lineage.snapshot("snap1"))
    train.complete()
    with lineage.job("register.fraud", inputs=[lineage.run("r1")]) as job:
        job.outputs.append(lineage.model_version("fraud", 1))
    with lineage.job("score.fraud", inputs=[lineage.model_version("fraud", 1)]) as job:
        job.outputs.append(lineage.file(tmp_path / "scored", rows=3))

    graph = lineage_graph.build(lineage_graph.read_events())
    assert lineage_graph.resolve(graph, "nothing") is None
    assert lineage_graph.resolve(graph, "r1") == ("factory", "run:r1")
    assert lineage_graph.resolve(graph, "snap") == ("factory", "snapshot:snap1")  # a unique prefix
    tree = lineage_graph.trace(graph, lineage_graph.resolve(graph, "fraud@v1"))
    (register,) = tree["upstream"]
    (run,) = register["datasets"]
    (training,) = run["upstream"]
    (snapshot,) = training["datasets"]
    (curation,) = snapshot["upstream"]
    (csv,) = curation["datasets"]
    assert (register["job"], training["job"], training["state"], curation["job"]) == (
        "register.fraud", "train.fraud", "COMPLETE", "curate.fraud")
    assert csv["name"] == str(source) and csv["version"] == "sha256:" + hashlib.sha256(b"a\n1\n").hexdigest()
    (scoring,) = tree["downstream"]
    assert scoring["job"] == "score.fraud" and scoring["datasets"][0]["rows"] == 3
    down = lineage_graph.trace(graph, ("factory", "snapshot:snap1"))["downstream"]
    assert down[0]["datasets"][0]["downstream"][0]["job"] == "register.fraud"  # snapshot -> run -> model


def test_unreadable_event_files_are_skipped(tmp_path):
    folder = tmp_path / "lineage"
    folder.mkdir()
    (folder / "event-1.json").write_text('{"eventType": "STA')  # being written right now
    assert lineage_graph.read_events() == []
    assert lineage_graph.read_events(tmp_path / "missing") == []


_EMITTER = """
import os, sys, time
from factory.governance import lineage
lineage._client(str(lineage.events_dir().absolute()))  # the client's import before the start line
open(f"{sys.argv[1]}.ready-{sys.argv[2]}", "w").close()
while not os.path.exists(sys.argv[1] + ".go"):  # both start together: their events land in the same microseconds
    time.sleep(0.005)
for i in range(int(sys.argv[3])):
    job = lineage.Job(f"score.{sys.argv[2]}{i}")
    job.start()
    job.complete()
"""


def test_two_processes_emitting_at_once_lose_no_event(tmp_path):
    flag = tmp_path / "flag"
    emitters = [subprocess.Popen([sys.executable, "-c", _EMITTER, str(flag), name, "60"]) for name in "ab"]
    deadline = time.monotonic() + 60
    while not all(Path(f"{flag}.ready-{name}").exists() for name in "ab") and time.monotonic() < deadline:
        time.sleep(0.01)
    Path(f"{flag}.go").touch()
    assert [e.wait(timeout=120) for e in emitters] == [0, 0]
    written = events(tmp_path)  # every file whole, strict JSON
    assert len(written) == 240 and len({e["run"]["runId"] + e["eventType"] for e in written}) == 240
    names = [p.name.split("-") for p in (tmp_path / "lineage").glob("event-*.json")]
    assert {name[3] for name in names} == {str(e.pid) for e in emitters}  # unique across processes by name
    old = tmp_path / "lineage" / "event-20261207-120000.123456.json"  # named as before the pid and random part
    old.write_text(json.dumps({**written[0], "job": {**written[0]["job"], "name": "score.old"}}))
    assert "score.old" in {e["job"]["name"] for e in lineage_graph.read_events()}


def test_a_run_that_curated_names_its_source_by_the_source_tables_fingerprint(tmp_path):
    import pyarrow as pa
    from omegaconf import OmegaConf

    from factory.data import snapshots
    from factory.data.fingerprint import table_fingerprint
    from factory.data.spec import TableSchema
    from factory.training import run_lineage

    source = pa.table({"x": [1.0, 1.0, 2.0], "y": [0, 0, 1]})
    curated = source.slice(1)  # dedupe dropped a row: run.json's data.fingerprint is this table's
    store = tmp_path / "store"
    snapshot_id = snapshots.write(curated, TableSchema({"x": "numeric"}, "y", "binary"), store,
                                  {"source": "synthetic", "source_fingerprint": table_fingerprint(source)})
    cfg = OmegaConf.create({"data": {"source": {"_target_": "factory.data.sources.SyntheticSource"},
                                     "curation": {"dataset": None, "store": str(store)}}})
    data = {"source": "synthetic", "snapshot": snapshot_id, "fingerprint": table_fingerprint(curated)}
    (found,) = run_lineage._source(cfg, data, None)
    assert (found.name, found.version) == ("source:synthetic", f"sha256:{table_fingerprint(source)}")
    (unsnapshotted,) = run_lineage._source(cfg, {**data, "snapshot": None}, None)  # no snapshot: run.json's
    assert unsnapshotted.version == f"sha256:{table_fingerprint(curated)}"


def test_a_piped_tree_keeps_long_paths_whole(capsys):
    """Piped output is not folded at 80 columns: a deep tree's long file path stays one word."""
    from factory.governance import lineage_graph

    path = "/tmp/" + "/".join(["a-rather-long-folder-name"] * 6) + "/transactions.csv"
    source = {"namespace": "file", "name": path}
    tree = {"dataset": {"namespace": "factory", "name": "run:r1"}, "downstream": [],
            "upstream": [{"job": "train.fraud", "state": "COMPLETE", "datasets": [
                {"namespace": "factory", "name": "snapshot:abc", "upstream": [
                    {"job": "curate.fraud", "state": "COMPLETE", "datasets": [{**source, "upstream": []}]}]}]}]}
    lineage_graph.print_tree(tree)
    assert path in capsys.readouterr().out
