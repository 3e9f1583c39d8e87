"""scripts/plan.py as users run it: a table per strategy, nothing written, bad input exits 2."""
from __future__ import annotations

from factory.distributed.memory import LAYOUTS
from tests.integration.helpers import run_script


def test_plan_prints_every_strategy_for_the_wide_model_on_two_devices(tmp_path):
    result = run_script(tmp_path, "plan.py", "model=mlp_wide", "strategy=deepspeed_zero3", "trainer.devices=2",
                        "data.source.rows=2000", timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    assert "devices: 2 per node x 1 node(s)" in out
    for layout in LAYOUTS:
        assert layout.name in out
    assert "* deepspeed_zero3 " in out  # the configured strategy is marked
    assert "DeepSpeed est." in out and "estimate_zero2/zero3_model_states_mem_needs" in out
    assert "strategy=deepspeed_zero3 fits" in out and "cheapest that fits: strategy=" in out
    assert list(tmp_path.iterdir()) == []  # no run directory, no log file


def test_plan_says_when_the_strategy_does_not_fit_and_still_exits_0(tmp_path):
    result = run_script(tmp_path, "plan.py", "model=mlp_wide", "strategy=ddp", "trainer.devices=2",
                        "data.source.rows=2000", "plan.device_memory_gb=0.01", timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "strategy=ddp needs ~" in result.stdout
    assert "(plan.device_memory_gb=0.01 x plan.headroom=0.9)" in result.stdout
    assert "no strategy fits on 2 device(s)" in result.stdout


def test_plan_rejects_a_bad_config_with_exit_code_2(tmp_path):
    result = run_script(tmp_path, "plan.py", "plan.headroom=lots", timeout=60)
    assert result.returncode == 2
    assert result.stderr.startswith("error: plan.headroom:")
