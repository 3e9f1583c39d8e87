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


def run_id(*, _root_) -> str:
    """``FACTORY_RUN_ID``, else with ``resume=auto`` the run to continue (``factory.resume``), else a new id.

    Cached in the config (OmegaConf's per-config cache, which copies travel with): every
    access to ``paths.run_dir`` in one config, and in its copies, agrees.
    """
    cache = OmegaConf.get_cache(_root_)["factory.run_id"]
    if "id" not in cache:
        if os.environ.get(RUN_ID_ENV):
            cache["id"] = os.environ[RUN_ID_ENV]
        elif _root_.get("resume") == "auto":
            from factory.resume import auto_run_id

            cache["id"] = auto_run_id(_root_)
        else:
            cache["id"] = new_run_id()
    return cache["id"]


def register() -> None:
    # Not use_cache: OmegaConf refuses it for resolvers that take _root_ (run_id caches itself).
    OmegaConf.register_new_resolver("factory.run_id", run_id, replace=True)
