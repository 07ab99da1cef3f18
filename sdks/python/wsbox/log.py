"""Logging into the host's log, tagged with the connection.

`print` (stdout) and stderr reach the host log too; these functions add a
level. `Handler` sends the standard `logging` module's records there.
"""

from __future__ import annotations

import logging

from wit_world.imports import log as raw
from wit_world.imports.log import Level

__all__ = ["Handler", "Level", "debug", "error", "info", "log", "trace", "warn"]


def log(level: Level, message: str) -> None:
    """Writes one line at `level` (`Level.TRACE` ... `Level.ERROR`)."""
    raw.log(level, message)


def trace(message: str) -> None:
    """Writes one line at `Level.TRACE`."""
    log(Level.TRACE, message)


def debug(message: str) -> None:
    """Writes one line at `Level.DEBUG`."""
    log(Level.DEBUG, message)


def info(message: str) -> None:
    """Writes one line at `Level.INFO`."""
    log(Level.INFO, message)


def warn(message: str) -> None:
    """Writes one line at `Level.WARN`."""
    log(Level.WARN, message)


def error(message: str) -> None:
    """Writes one line at `Level.ERROR`."""
    log(Level.ERROR, message)


class Handler(logging.Handler):
    """A `logging` handler writing to the host log:
    `logging.getLogger().addHandler(wsbox.log.Handler())`."""

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR:
            level = Level.ERROR
        elif record.levelno >= logging.WARNING:
            level = Level.WARN
        elif record.levelno >= logging.INFO:
            level = Level.INFO
        else:
            level = Level.DEBUG
        log(level, self.format(record))
