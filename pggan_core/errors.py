"""User-facing errors: one line that names the file (or key) and the fix.

The CLI prints ``error: <message>`` for these and exits with status 2; anything else is a bug
and keeps its traceback.
"""


class PgganError(Exception):
    """Base class for errors caused by the user's input, not by a bug."""


class ConfigError(PgganError):
    """An unknown config key, a bad value, an unknown profile or dataset."""


class DataError(PgganError):
    """Missing, empty, unreadable, corrupt or inconsistent input data."""


class CheckpointError(PgganError):
    """A checkpoint that is missing, unreadable or unsafe to load."""


class RunNotFoundError(PgganError):
    """A later step was asked for before the run it reads exists."""
