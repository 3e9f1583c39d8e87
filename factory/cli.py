"""What every ``scripts/*.py`` entry point shares: bad input is one line and exit code 2."""
from __future__ import annotations

import functools
import os
import sys
from typing import Callable, TypeVar

from factory.config import CONFIG_DIR  # noqa: F401  (registers resolvers before Hydra composes)
from factory.config.hydra_errors import describe
from factory.errors import FactoryError

#: Exit code for bad input (config, data, paths); 1 stays for crashes.
EXIT_BAD_INPUT = 2
F = TypeVar("F", bound=Callable)


def job(task: F) -> F:
    """Wrap a Hydra task function so bad input exits 2 from inside the job.

    Exiting from the job itself keeps Hydra from adding its own "Error executing job"
    line around ours.
    """

    @functools.wraps(task)
    def wrapped(*args, **kwargs):
        try:
            return task(*args, **kwargs)
        except FactoryError as e:
            _exit_bad_input(str(e), e)

    return wrapped  # type: ignore[return-value]


def run_cli(hydra_main: Callable[[], object]) -> None:
    """Call a ``@hydra.main`` function, reporting bad input as ``error: ...`` and exit 2.

    Hydra prints composition errors over several lines and exits 1; asking it to raise
    (``HYDRA_FULL_ERROR``) lets us report them in one line instead. Set
    ``FACTORY_TRACEBACK=1`` to see the full traceback of a bad-input error.
    """
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        hydra_main()
    except FactoryError as e:
        _exit_bad_input(str(e), e)
    except (HydraException, OmegaConfBaseException) as e:
        _exit_bad_input(describe(e), e)


def _exit_bad_input(message: str, error: BaseException) -> None:
    if os.environ.get("FACTORY_TRACEBACK"):
        raise error
    for line in message.splitlines() or [type(error).__name__]:
        print(f"error: {line}", file=sys.stderr)
    sys.exit(EXIT_BAD_INPUT)
