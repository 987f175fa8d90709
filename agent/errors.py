"""Exit codes and the agent's own error family.

Every subsystem raises a subclass of :class:`RemotairError` (or, from the hardware edge, a
:class:`drivers.errors.SensorError` or :class:`drivers.errors.CameraError`); the CLI turns each
into one line.
"""

from __future__ import annotations

import enum

from drivers.errors import CameraError, SensorError


class ExitCode(enum.IntEnum):
    """Documented exit codes of every ``remotair`` command."""

    OK = 0
    FAILURE = 1
    """A check or a device failed (a sensor did not answer, doctor found a failure)."""
    USAGE = 2
    """Bad command line or configuration."""
    HARDWARE = 3
    """A sensor or camera error stopped the command."""
    UNAVAILABLE = 4
    """A service the command needs is not there (agent not running, broker unreachable)."""
    INTERRUPTED = 130


class RemotairError(Exception):
    """Base of the agent's own errors. ``exit_code`` says how the CLI ends on it."""

    exit_code: ExitCode = ExitCode.FAILURE


def describe_exception(exc: BaseException) -> tuple[str, ExitCode]:
    """One line for a technician and the exit code that goes with it."""
    if isinstance(exc, RemotairError):
        return str(exc), exc.exit_code
    if isinstance(exc, SensorError | CameraError):
        return str(exc), ExitCode.HARDWARE
    if isinstance(exc, PermissionError):
        return f"permission denied: {exc.filename or exc}", ExitCode.FAILURE
    if isinstance(exc, FileNotFoundError):
        return f"no such file: {exc.filename or exc}", ExitCode.FAILURE
    if isinstance(exc, OSError):
        where = f": {exc.filename}" if exc.filename else ""
        return f"{exc.strerror or exc}{where}", ExitCode.FAILURE
    return f"{type(exc).__name__}: {exc}", ExitCode.FAILURE
