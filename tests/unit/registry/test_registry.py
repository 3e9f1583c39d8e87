"""The registry store on real files: references, numbering, stages, audit, locking, concurrency.

Versions here hold a small stand-in checkpoint file: the store never reads a checkpoint's
content. Registering and loading real runs: tests/integration/test_registry.py.
"""
from __future__ import annotations

import getpass
import json
import multiprocessing
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from filelock import FileLock

from factory.rundir import manifest
from factory.errors import FactoryError
from factory.registry import store
from factory.registry.capture import register
from factory.registry.store import Registry, parse_ref


def _add(registry: Registry, name: str, content: str = "weights", run_id: str = "run-a"):
    staged = registry.root / store.STAGING / content
    staged.mkdir(parents=True)
    (staged / store.CHECKPOINT).write_text(content)
    metric = {"name": "val/loss", "mode": "min", "val": 0.5, "test": 0.6}
    return registry.add(name, staged, {"run_id": run_id, "run_dir": f"/runs/{run_id}"}, metric)


@pytest.mark.parametrize("ref, expected", [
    ("fraud", ("fraud", None)), ("fraud@latest", ("fraud", None)), ("fraud@3", ("fraud", 3)),
    ("fraud@v3", ("fraud", 3)), ("fraud@production", ("fraud", "production")),
    ("fraud_detection.v2-b@staging", ("fraud_detection.v2-b", "staging")),
])
def test_parse_ref(ref, expected):
    assert parse_ref(ref) == expected


@pytest.mark.parametrize("ref, message", [
    ("fraud@prod", "after '@' comes a version number"), ("fraud@", None), ("", "model name ''"),
    ("my model", "model name 'my model'"), ("../etc", "model name '..")])
def test_parse_ref_rejects_bad_references(ref, message):
    if message is None:  # an empty selector means latest
        assert parse_ref(ref) == ("fraud", None)
        return
    with pytest.raises(FactoryError, match=message):
        parse_ref(ref)


def test_default_dir_follows_env(tmp_path, monkeypatch):
    monkeypatch.setenv("FACTORY_ROOT", str(tmp_path / "root"))
    monkeypatch.delenv("FACTORY_REGISTRY", raising=False)
    assert store.default_dir() == tmp_path / "root" / "registry"
    monkeypatch.setenv("FACTORY_REGISTRY", str(tmp_path / "shared"))
    assert store.default_dir() == tmp_path / "shared"
    assert Registry(tmp_path / "explicit").root == tmp_path / "explicit"


def test_versions_count_up_per_name_with_files_and_metadata(tmp_path):
    registry = Registry(tmp_path / "reg")
    first, second, other = _add(registry, "fraud", "a"), _add(registry, "fraud", "b"), _add(registry, "churn", "c")
    assert [(v.name, v.version) for v in registry.versions()] == [("churn", 1), ("fraud", 1), ("fraud", 2)]
    assert [v.version for v in registry.versions("fraud")] == [1, 2]
    assert (first.version, second.version, other.version) == (1, 2, 1)
    assert second.checkpoint.read_text() == "b" and second.path == tmp_path / "reg" / "fraud" / "v2"
    meta = second.metadata()
    assert (meta["name"], meta["version"], meta["stage"], meta["run_id"]) == ("fraud", 2, "none", "run-a")
    assert meta["created_by"] == getpass.getuser() and meta["created_at"].endswith("+00:00")
    index = json.loads((tmp_path / "reg" / store.INDEX).read_text())
    assert index["models"]["fraud"]["next_version"] == 3
    assert index["models"]["fraud"]["versions"]["1"]["metric"]["val"] == 0.5
    assert list((tmp_path / "reg" / store.STAGING).iterdir()) == []  # staged folders moved in


def test_get_resolves_latest_versions_and_stages(tmp_path):
    registry = Registry(tmp_path)
    for content in "abc":
        _add(registry, "fraud", content)
    registry.promote("fraud", 1, "staging")
    registry.promote("fraud", 2, "staging")
    registry.promote("fraud", 3, "production")
    assert registry.get("fraud").version == 3
    assert registry.get("fraud@1").version == 1
    assert registry.get("fraud@staging").version == 2  # the newest of several
    assert registry.get("fraud@production").version == 3


@pytest.mark.parametrize("ref, message", [
    ("nope", r"no model named 'nope' \(models: fraud\)"),
    ("fraud@7", r"model 'fraud' has no version 7 \(versions: 1\)"),
    ("fraud@production", r"model 'fraud' has no version in production \(stages: v1 none\)"),
])
def test_get_names_what_exists(tmp_path, ref, message):
    registry = Registry(tmp_path)
    _add(registry, "fraud")
    with pytest.raises(FactoryError, match=message):
        registry.get(ref)


def test_empty_registry_lists_nothing_and_names_no_models(tmp_path):
    registry = Registry(tmp_path / "none")
    assert registry.versions() == [] and registry.audit() == []
    with pytest.raises(FactoryError, match="no model named 'x' .models: none yet"):
        registry.versions("x")
    assert not (tmp_path / "none").exists()  # reading creates nothing


def test_one_production_version_per_name_and_audit(tmp_path):
    registry = Registry(tmp_path)
    _add(registry, "fraud", "a"), _add(registry, "fraud", "b"), _add(registry, "churn", "c")
    assert registry.promote("fraud", 1, "production") == [(1, "none", "production")]
    assert registry.promote("churn", 1, "production") == [(1, "none", "production")]
    assert registry.promote("fraud", 2, "production") == [(2, "none", "production"), (1, "production", "archived")]
    assert registry.promote("fraud", 2, "production") == []  # already there: no change, no audit line
    stages = {(v.name, v.version): v.stage for v in registry.versions()}
    assert stages == {("fraud", 1): "archived", ("fraud", 2): "production", ("churn", 1): "production"}
    log = registry.audit()
    assert [(e["action"], e["name"], e["version"]) for e in log] == [
        ("register", "fraud", 1), ("register", "fraud", 2), ("register", "churn", 1),
        ("promote", "fraud", 1), ("promote", "churn", 1), ("promote", "fraud", 2), ("archive", "fraud", 1)]
    assert log[-1]["details"] == {"from": "production", "to": "archived", "reason": "v2 promoted to production"}
    assert log[-2]["details"] == {"from": "none", "to": "production"}
    assert all(e["who"] == getpass.getuser() and e["when"].endswith("+00:00") for e in log)
    assert log[0]["details"]["run_id"] == "run-a"


def test_promote_rejects_unknown_stage_name_and_version(tmp_path):
    registry = Registry(tmp_path)
    _add(registry, "fraud")
    with pytest.raises(FactoryError, match="stage 'prod': expected one of staging, production, archived"):
        registry.promote("fraud", 1, "prod")
    with pytest.raises(FactoryError, match="no model named 'churn'"):
        registry.promote("churn", 1, "staging")
    with pytest.raises(FactoryError, match=r"no version 4 \(versions: 1\)"):
        registry.promote("fraud", 4, "staging")
    assert len(registry.audit()) == 1


def test_version_numbers_are_never_reused(tmp_path):
    registry = Registry(tmp_path)
    _add(registry, "fraud", "a")
    # A writer that died after moving its folder in but before writing the index left v2 behind.
    (tmp_path / "fraud" / "v2").mkdir()
    assert _add(registry, "fraud", "b").version == 3
    # A version folder deleted by hand does not give its number back either.
    shutil.rmtree(tmp_path / "fraud" / "v3")
    assert _add(registry, "fraud", "c").version == 4


def test_a_held_lock_times_out_with_a_clear_error(tmp_path):
    registry = Registry(tmp_path, lock_timeout=0.2)
    _add(registry, "fraud", "a")
    with FileLock(str(tmp_path / store.LOCK)):  # another writer
        with pytest.raises(FactoryError, match=r"another writer has held \.lock for over 0\.2 s"):
            _add(registry, "fraud", "b")
        with pytest.raises(FactoryError, match="another writer"):
            registry.promote("fraud", 1, "staging")
    assert [v.version for v in registry.versions()] == [1]


def _writer(root: str, worker: int, count: int, barrier) -> None:
    registry = Registry(root)
    barrier.wait()  # every process starts writing at the same moment
    for i in range(count):
        _add(registry, "fraud", f"w{worker}-{i}", run_id=f"w{worker}-{i}")


def test_concurrent_writers_lose_no_version(tmp_path):
    workers, count = 4, 5
    ctx = multiprocessing.get_context("spawn" if sys.platform == "darwin" else "fork")
    barrier = ctx.Barrier(workers)
    processes = [ctx.Process(target=_writer, args=(str(tmp_path), w, count, barrier)) for w in range(workers)]
    for p in processes:
        p.start()
    for p in processes:
        p.join(60)
    assert [p.exitcode for p in processes] == [0] * workers
    registry = Registry(tmp_path)
    versions = registry.versions("fraud")
    assert [v.version for v in versions] == list(range(1, workers * count + 1))
    # Each version holds the checkpoint its writer staged, and says so in its metadata.
    assert {v.checkpoint.read_text() for v in versions} == {f"w{w}-{i}" for w in range(workers) for i in range(count)}
    assert all(v.metadata()["run_id"] == v.checkpoint.read_text() == v.run_id for v in versions)
    log = registry.audit()
    assert sorted(e["version"] for e in log if e["action"] == "register") == list(range(1, workers * count + 1))


def _run_dir(tmp_path: Path, status: str, error: str | None = None) -> Path:
    run_dir = tmp_path / "outputs" / "demo" / "2026-01-01_00-00-00_abcdef"
    run_dir.mkdir(parents=True)
    record = manifest.RunRecord.begin(run_dir, "demo", seed=1, tags=[])
    record.status, record.error = status, error
    record.best_checkpoint = str(run_dir / "checkpoints" / "best.ckpt")
    record.save()
    return run_dir


@pytest.mark.parametrize("status, error, message", [
    ("failed", "DataError: column 'x'\nmore", r"status 'failed', not 'completed': DataError: column 'x'; only"),
    ("running", None, r"status 'running', not 'completed' \(still running, or stopped without"),
])
def test_register_refuses_runs_that_did_not_complete(tmp_path, status, error, message):
    run_dir = _run_dir(tmp_path, status, error)
    registry = Registry(tmp_path / "reg")
    with pytest.raises(FactoryError, match=message):
        register(registry, run_dir)
    with pytest.raises(FactoryError, match=message):
        register(registry, "abcdef", root=tmp_path)  # by run id suffix
    assert not registry.root.exists()


def test_register_without_checkpoint_registers_nothing(tmp_path):
    run_dir = _run_dir(tmp_path, "completed")
    registry = Registry(tmp_path / "reg")
    with pytest.raises(FactoryError, match=r"checkpoint .*best\.ckpt is missing; nothing to register"):
        register(registry, run_dir)
    assert registry.versions() == []


def test_register_of_a_broken_sharded_checkpoint_leaves_nothing_half_written(tmp_path):
    # A ZeRO checkpoint is a directory: it goes through factory.rundir.checkpoints.consolidate, which
    # refuses an incomplete one; the staged copy is removed and no version is created.
    run_dir = _run_dir(tmp_path, "completed")
    (run_dir / "checkpoints" / "best.ckpt").mkdir(parents=True)
    registry = Registry(tmp_path / "reg")
    with pytest.raises(FactoryError, match=r"best\.ckpt is a directory but not a DeepSpeed checkpoint"):
        register(registry, run_dir, name="demo")
    assert registry.versions() == [] and registry.audit() == []
    assert list((registry.root / store.STAGING).iterdir()) == []


def test_cli_list_and_show_load_no_torch(tmp_path):
    registry = Registry(tmp_path)
    _add(registry, "fraud")
    code = ("import runpy, sys\n"
            "for args in (['list'], ['show', 'fraud@1'], ['list', '--json']):\n"
            f"    sys.argv = ['registry.py', '--registry', {str(tmp_path)!r}, *args]\n"
            "    runpy.run_path(sys.argv_script, run_name='__main__')\n"
            "print('HEAVY', sorted(m for m in ('torch', 'pytorch_lightning', 'pandas') if m in sys.modules))\n")
    code = code.replace("sys.argv_script", repr(str(Path(__file__).parents[3] / "scripts" / "registry.py")))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "fraud" in out.stdout and "run-a" in out.stdout
    assert out.stdout.strip().splitlines()[-1] == "HEAVY []"


def test_reserved_names_and_a_torn_audit_line(tmp_path):
    from factory.errors import FactoryError
    from factory.registry.store import AUDIT, Registry, check_name

    for name in ("index.json", "audit.jsonl"):
        with pytest.raises(FactoryError, match="reserved"):
            check_name(name)
    registry = Registry(tmp_path / "registry")
    (tmp_path / "registry").mkdir()
    (tmp_path / "registry" / AUDIT).write_text('{"action": "register", "version": 1}\n{"action": "reg')
    assert registry.audit() == [{"action": "register", "version": 1}]


def test_an_add_the_audit_log_refuses_leaves_no_version_folder(tmp_path):
    registry = Registry(tmp_path / "registry")
    _add(registry, "fraud", "a")
    _add(registry, "fraud", "b")
    log = registry.root / store.AUDIT
    log.write_text("".join(log.read_text().splitlines(keepends=True)[:-1]))  # its last line cut
    with pytest.raises(FactoryError, match="then delete audit.head to accept the log as it stands"):
        _add(registry, "fraud", "c")
    assert sorted(p.name for p in (registry.root / "fraud").iterdir()) == ["v1", "v2"]
    staged = registry.root / store.STAGING / "c"
    assert sorted(p.name for p in staged.iterdir()) == [store.CHECKPOINT]  # back where it was, no meta.json
    assert [v.version for v in registry.versions("fraud")] == [1, 2]
    (registry.root / "audit.head").unlink()  # the way out the refusal names
    assert registry.add("fraud", staged, {"run_id": "run-c"}, {"name": "val/loss", "mode": "min"}).version == 3
