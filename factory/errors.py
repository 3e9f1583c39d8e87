"""Errors that mean "the user's input is wrong", reported as one line and exit code 2."""


class FactoryError(Exception):
    """Bad input: a config key, a file, a column. The message names what is wrong.

    The CLI prints ``error: <message>`` on one line and exits with code 2; anything
    else that escapes is a bug and keeps its traceback.
    """


class ConfigError(FactoryError):
    """A composed config that does not match its schema."""


class DataError(FactoryError):
    """A data source or table that cannot be used as declared."""
