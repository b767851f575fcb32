"""Exceptions that carry their exit status, so the CLI maps them without guessing.

Every message is one line meant for a person: it names what was wrong and, where it helps,
what to do about it.
"""

from __future__ import annotations

from netkit.core.exitcodes import ExitCode


class NetkitError(Exception):
    """Base class: an expected failure with a one-line message and an exit status."""

    exit_code: ExitCode = ExitCode.RUNTIME

    def __init__(self, message: str, *, exit_code: ExitCode | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code

    @property
    def message(self) -> str:
        return str(self)


class InputError(NetkitError, ValueError):
    """Bad input (a target, a duration, a file's content): exit 2."""

    exit_code = ExitCode.USAGE


class UsageError(InputError):
    """Bad input on the command line itself (an argument, an option's value): exit 2, and the CLI
    adds the ``Try 'netkit CMD --help'`` line after the message, as for any usage error. Bad
    content read from a file or from stdin stays an :class:`InputError` (its message names the
    line; the help would not point at it)."""


class RuntimeFailure(NetkitError):
    """The environment refused (cannot bind, permission, no such file): exit 3."""

    exit_code = ExitCode.RUNTIME


class CheckFailed(NetkitError):
    """The thing checked is not as required (refused, timed out, over a threshold): exit 1."""

    exit_code = ExitCode.CHECK_FAILED
