"""Errors that are the user's to fix, as opposed to bugs in fraud_dask.

A :class:`UserError` says, in one line, what is wrong and where: a config value, a path that does
not exist, a file that cannot be read, a column of the wrong type, a missing PAN hash key, a model
version the registry does not hold. ``python -m fraud_dask`` prints it as ``error: MESSAGE`` on
stderr and exits with status 2, without a traceback (``HYDRA_FULL_ERROR=1`` shows the traceback).
Any other exception is treated as a bug and keeps its traceback.

Raise them where user input is checked, never around code that merely failed. Each class also
derives from the built-in type its raise site used before, so ``except ValueError`` (or
``FileNotFoundError``, ``TypeError``, ``KeyError``) in callers still catches it.
"""

from __future__ import annotations

__all__ = ["InputNotFoundError", "InputTypeError", "RunFailed", "UserError"]


class UserError(ValueError):
    """A mistake in the user's input; its message is one line naming what and where."""

    def __str__(self) -> str:
        # one line even when a caller passed text with newlines; KeyError subclasses would
        # otherwise quote the message
        text = str(self.args[0]) if self.args else ""
        return " ".join(text.split())


class InputNotFoundError(UserError, FileNotFoundError):
    """A path the user named (a data source, a file) does not exist or holds no data file."""


class InputTypeError(UserError, TypeError):
    """A column of the user's data has a type that cannot be used (the file and column named)."""


class RunFailed(RuntimeError):
    """The run could not finish for a reason outside the code and the input (e.g. the cluster
    lost a worker on every attempt of a fit); one line naming what failed and why. The CLI prints
    it as ``error: MESSAGE`` and exits with status 1."""

    def __str__(self) -> str:
        text = str(self.args[0]) if self.args else ""
        return " ".join(text.split())
