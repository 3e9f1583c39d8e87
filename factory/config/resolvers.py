"""OmegaConf resolvers the configs use; registered when ``factory.config`` is imported."""
from __future__ import annotations

import os
import secrets
from datetime import datetime

from omegaconf import OmegaConf

#: Set by a run for the processes it launches (DDP workers), so they share its directory.
RUN_ID_ENV = "FACTORY_RUN_ID"


def new_run_id() -> str:
    """``<YYYY-MM-DD_HH-MM-SS>_<6 hex>``: sortable by start, unique within a second."""
    return f"{datetime.now():%Y-%m-%d_%H-%M-%S}_{secrets.token_hex(3)}"


def run_id() -> str:
    return os.environ.get(RUN_ID_ENV) or new_run_id()


def register() -> None:
    # Cached per config object: every access to paths.run_dir in one config agrees.
    OmegaConf.register_new_resolver("factory.run_id", run_id, use_cache=True, replace=True)
