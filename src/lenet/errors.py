"""User-facing errors.

Everything a user can cause (a bad file, a wrong flag, missing data) raises a subclass of
:class:`LenetError`. The CLI prints its message, never a traceback, and exits with status 2.
Messages name the file or field, say what was expected, and suggest the fix.
"""


class LenetError(Exception):
    """Base class for errors caused by user input or the environment, not by a bug."""


class DatasetError(LenetError):
    """A data file is missing, corrupt, or cannot be fetched."""


class ConfigError(LenetError):
    """A config file or command-line value is invalid."""


class WeightsError(LenetError):
    """A weights file is missing, corrupt, or not a lenet safetensors file."""


class OutputError(LenetError):
    """A file the command is asked to write cannot be written there (--out, -o, a run dir)."""
