"""A config planned from Python, never validated, still gets plan.*'s ranges checked."""
import pytest
from omegaconf import OmegaConf

from factory.distributed.planner import _plan_settings
from factory.errors import ConfigError


@pytest.mark.parametrize("plan, message", [({"headroom": 1.5}, r"plan.headroom: must be in \(0, 1\], got 1.5"),
                                           ({"headroom": 0}, "plan.headroom: must be in"),
                                           ({"device_memory_gb": -1}, "plan.device_memory_gb: must be > 0, got -1")])
def test_out_of_range_plan_values_are_one_line(plan, message):
    with pytest.raises(ConfigError, match=message):
        _plan_settings(OmegaConf.create({"plan": plan}))


def test_missing_plan_takes_the_schema_defaults():
    assert _plan_settings(OmegaConf.create({})) == {"check": True, "device_memory_gb": None,
                                                    "host_memory_gb": None, "headroom": 0.9}
