"""The server's drift.prom (one per model name) holds the served stage's figures only: a run on
another stage, or on a window mixing versions, leaves it alone (monitor.json still written)."""
from __future__ import annotations

import factory
from factory import registry
from factory.serving.request_log_files import monitoring_file
from tests.integration.test_monitor_job import NAME, TINY_MODEL, calm, monitor, root  # noqa: F401 - fixtures

__all__ = ["root", "calm"]


def test_only_the_served_stage_writes_the_servers_gauges(root, calm, tmp_path):  # noqa: F811
    path = monitoring_file(calm, NAME)
    path.unlink(missing_ok=True)
    served = monitor(root, tmp_path / "a", f"serving_dir={calm}")
    assert served["outputs"]["server_prom"] == str(path) and path.is_file()
    path.unlink()  # so any write by the next run shows

    registry.promote(NAME, 1, "staging", registry=root / "registry")  # v1 leaves production
    try:
        staged = _run(root, tmp_path / "b", f"{NAME}@staging", f"serving_dir={calm}")
    finally:
        registry.promote(NAME, 1, "production", registry=root / "registry")
    assert "server_prom" not in staged["outputs"] and "'staging'" in staged["outputs"]["server_prom_skipped"]
    assert not path.exists() and list((tmp_path / "b" / "monitor").rglob("monitor.json"))


def _run(root, tmp_path, ref, *overrides):
    from factory.cli import set_model
    from factory.monitoring.job import run

    cfg = factory.compose("monitor", [f"registry={root / 'registry'}", f"output_dir={tmp_path / 'monitor'}",
                                      *TINY_MODEL, *overrides], check=False)
    set_model(cfg, ref)
    return run(cfg)


def test_a_window_of_other_versions_leaves_the_gauges_alone():
    from types import SimpleNamespace

    from factory.monitoring.job import _not_served

    v1 = SimpleNamespace(version=1, stage="production")
    assert _not_served(v1, {"1": 3000}) is None
    assert "other version(s) than v1: 2" in _not_served(v1, {"1": 10, "2": 5})
    assert "'staging'" in _not_served(SimpleNamespace(version=2, stage="staging"), {"2": 5})
