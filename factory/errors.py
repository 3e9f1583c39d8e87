"""Errors that mean "the user's input is wrong", reported as one line and exit code 2."""
from __future__ import annotations

import os
import sys

#: Exit code for bad input (config, data, paths); 1 stays for crashes.
EXIT_BAD_INPUT = 2


class FactoryError(Exception):
    """Bad input: a config key, a file, a column. The message names what is wrong.

    The CLI prints ``error: <message>`` on one line and exits with code 2; anything
    else that escapes is a bug and keeps its traceback.
    """


class ConfigError(FactoryError):
    """A composed config that does not match its schema."""


class DataError(FactoryError):
    """A data source or table that cannot be used as declared."""


class AccessError(FactoryError):
    """An identity that the access policy does not let read a governed dataset (``factory.governance.access``)."""


def exit_bad_input(message: str, error: BaseException) -> None:
    """Print ``message`` as ``error: ...`` lines on stderr and exit 2 (``FACTORY_TRACEBACK=1``: raise).

    For entry points and for Hydra callbacks, whose exceptions Hydra would turn into warnings.
    """
    if os.environ.get("FACTORY_TRACEBACK"):
        raise error
    from factory.redact import text  # a message may quote a URL with its password: consoles get logged too

    for line in text(message).splitlines() or [type(error).__name__]:
        print(f"error: {line}", file=sys.stderr)
    sys.exit(EXIT_BAD_INPUT)
