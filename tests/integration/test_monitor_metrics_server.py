"""A real server's /metrics shows the monitor job's latest drift gauges, and survives a bad file.

The server reads ``<serving_dir>/<model>/monitoring/drift.prom`` (written by ``scripts/monitor.py``
for a served model) without importing ``factory.monitoring``; the file is re-read when it changes.
"""
from __future__ import annotations

import os
import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration import serve_helpers
from tests.integration.test_monitor_job import NAME, TINY_MODEL, root, traffic, write_log  # noqa: F401 - fixture

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _samples(text: str) -> dict:
    return {(s.name, s.labels.get("feature")): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def _touch_later(path) -> None:
    """Move the file's mtime on (a rewrite within the filesystem's timestamp tick must still be seen)."""
    later = time.time() + 5
    os.utime(path, (later, later))


def test_metrics_show_the_latest_drift_gauges(root, tmp_path):  # noqa: F811 - the fixture imported above
    from factory.cli import set_model
    from factory import compose
    from factory.monitoring.job import run
    from factory.serving.request_log_files import monitoring_file

    serving_dir = write_log(root, "serving-metrics", traffic(shift={"amount": 1.0}))
    server = serve_helpers.start(tmp_path, f"model={NAME}@production", f"registry={root / 'registry'}",
                                 f"serving_dir={serving_dir}")
    try:
        before = httpx.get(server.url + "/metrics").text
        assert "factory_monitor_" not in before and "factory_requests_total" in before

        cfg = compose("monitor", [f"registry={root / 'registry'}", f"serving_dir={serving_dir}",
                                  f"output_dir={tmp_path / 'monitor'}", *TINY_MODEL], check=False)
        set_model(cfg, f"{NAME}@production")
        record = run(cfg)
        path = monitoring_file(serving_dir, NAME)
        assert record["outputs"]["server_prom"] == str(path) and path.is_file()

        response = httpx.get(server.url + "/metrics")
        assert response.status_code == 200
        samples = _samples(response.text)  # the whole answer still parses, server and monitor families together
        assert samples[("factory_monitor_drift_detected", "amount")] == 1
        assert samples[("factory_monitor_drift_detected", "hour")] == 0
        assert samples[("factory_monitor_rows", None)] == 3000
        assert any(name == "factory_requests_total" for name, _ in samples)

        path.write_text("factory_monitor_rows{model=\"x\" 12\nnot prometheus at all\n")  # malformed
        _touch_later(path)
        response = httpx.get(server.url + "/metrics")
        assert response.status_code == 200
        assert "factory_monitor_" not in response.text and "factory_requests_total" in response.text

        path.write_text("# TYPE factory_monitor_rows gauge\nfactory_monitor_rows{model=\"fraud_detection\"} 7\n"
                        "# TYPE factory_requests_total counter\nfactory_requests_total{endpoint=\"x\"} 1e9\n")
        _touch_later(path)
        text = httpx.get(server.url + "/metrics").text
        assert _samples(text)[("factory_monitor_rows", None)] == 7  # re-read after the change
        assert "1e+09" not in text and "1000000000" not in text  # a file cannot shadow the server's own metrics

        path.unlink()
        response = httpx.get(server.url + "/metrics")
        assert response.status_code == 200 and "factory_monitor_" not in response.text
    finally:
        assert server.stop() == 0
    log = server.output()
    assert "skipping the malformed monitoring file" in log and "not named factory_monitor_" in log
