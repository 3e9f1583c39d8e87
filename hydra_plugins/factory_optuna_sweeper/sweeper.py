"""The plugin class Hydra finds (``hydra/sweeper: optuna``). Hydra imports every public module
of ``hydra_plugins`` at start-up, so this one stays light: Optuna loads only when a sweep runs."""
from typing import Any, List

from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


class OptunaSweeper(Sweeper):
    """Asks Optuna for trials and runs them with Hydra's launcher; see ``_impl``."""

    def __init__(self, **kwargs: Any) -> None:
        from hydra_plugins.factory_optuna_sweeper._impl import OptunaSweeperImpl

        self.impl = OptunaSweeperImpl(**kwargs)

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.impl.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: List[str]) -> Any:
        return self.impl.sweep(arguments)
