"""User-facing errors: one line that names the file (or key) and the fix.

The CLI prints ``error: <message>`` and exits with status 2 (TrainingInterrupted: its message
alone, exit status 128 + the signal number); anything else is a bug and keeps its traceback.
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


class DataMismatchError(DataError):
    """A run is asked to continue, or be reused, on data other than it was trained on."""


class StorageError(PgganError):
    """A file could not be written: a full disk, a quota, a read-only or unwritable folder."""


class RunInUseError(PgganError):
    """Another process is training into the same run folder."""


class TrainingInterrupted(PgganError):
    """SIGINT or SIGTERM stopped training after a checkpoint; the message names how to resume."""

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.signum = signum

    @property
    def exit_status(self) -> int:
        """130 for SIGINT, 143 for SIGTERM: what a shell reports for a process it killed."""
        return 128 + self.signum


class BookError(PgganError):
    """A notebook raised, or Sphinx reported an error or warning, while building the book."""
