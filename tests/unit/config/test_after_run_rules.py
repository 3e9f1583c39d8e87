"""after_run and the trackers: the hook that closes a wandb or MLflow run cannot be left out,
and a config without the key runs the standard hooks."""
import pytest

from factory import compose
from factory.config.schemas import STANDARD_AFTER_RUN, TRACKING_HOOK, TrainConf
from factory.errors import ConfigError


@pytest.mark.parametrize("logger", ["wandb", "mlflow"])
def test_a_tracker_without_its_hook_is_refused(logger):
    with pytest.raises(ConfigError, match=f"after_run: logger=.* needs {TRACKING_HOOK}"):
        compose("train", [f"logger={logger}", "after_run=[factory.reports.after_run]"])
    with pytest.raises(ConfigError, match="needs factory.tracking.loggers.after_run"):
        compose("train", [f"logger={logger}", "after_run=[]"])


@pytest.mark.parametrize("logger", ["logger=csv", "logger=tensorboard", "~logger"])
def test_no_hooks_is_fine_where_nothing_needs_closing(logger):
    assert list(compose("train", [logger, "after_run=[]"]).after_run) == []


def test_the_standard_hooks_are_the_yaml_and_the_schema_default():
    assert tuple(compose("train").after_run) == STANDARD_AFTER_RUN == tuple(TrainConf().after_run)
