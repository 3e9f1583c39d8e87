"""Run ids: names of run directories under ``outputs/<task>/``, fixed by ``FACTORY_RUN_ID`` or new.

Nothing here imports the rest of factory (but its errors): the config resolvers, ``resume``
and ``run_dirs`` all read ids from here.
"""
from __future__ import annotations

import os
import re
import secrets
from datetime import datetime

from factory.errors import ConfigError

#: Set by a run for the processes it launches (DDP workers), so they share its directory.
RUN_ID_ENV = "FACTORY_RUN_ID"
#: A run id names one directory under ``outputs/<task>/``: one path component, no surprises in a shell.
_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def new_run_id() -> str:
    """``<YYYY-MM-DD_HH-MM-SS>_<6 hex>``: sortable by start, unique within a second."""
    return f"{datetime.now():%Y-%m-%d_%H-%M-%S}_{secrets.token_hex(3)}"


def check_run_id(run_id: str, source: str = RUN_ID_ENV) -> str:
    """``run_id`` if it is a name (letters, digits, ``.``, ``_``, ``-``; not a path).

    Raises:
        ConfigError: naming ``source`` (the variable or key that gave the id).
    """
    if not _RUN_ID.fullmatch(run_id):  # also refuses "", "." and "..": a name starts with a letter or digit
        raise ConfigError(f"{source}={run_id!r}: a run id is a name, not a path: up to 128 letters, digits, "
                          "'.', '_' or '-', starting with a letter or digit")
    return run_id


def fixed_run_id() -> str | None:
    """The run id ``FACTORY_RUN_ID`` fixes, checked; ``None`` when it is unset or empty."""
    value = os.environ.get(RUN_ID_ENV)
    return check_run_id(value) if value else None
