"""How Hydra runs this process: one run, or a job of a ``-m`` sweep.

Here, below the packages that ask (the CLI, reports, sweeps), so none imports another for it.
"""
from __future__ import annotations


def in_sweep() -> bool:
    """Whether this process runs a job of a ``-m`` sweep (Hydra's multirun)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
