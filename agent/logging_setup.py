"""Log lines readable in ``journalctl`` and on a technician's terminal.

Under systemd (``$JOURNAL_STREAM`` set) the journal adds the time, so lines carry a syslog
priority prefix (``<4>``) instead, and ``journalctl -p warning`` filters by level. On a terminal
each line starts with the local time.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Literal

from agent.config_base import Section, setting

_PRIORITY = {
    logging.DEBUG: 7,
    logging.INFO: 6,
    logging.WARNING: 4,
    logging.ERROR: 3,
    logging.CRITICAL: 2,
}


class _JournalFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"<{_PRIORITY.get(record.levelno, 6)}>{super().format(record)}"


def configure_logging(level: str = "warning", *, debug: bool = False) -> None:
    """(Re)configure the root logger once per process; later calls only change the level."""
    root = logging.getLogger()
    numeric = logging.DEBUG if debug else getattr(logging, level.upper(), logging.INFO)
    root.setLevel(numeric)
    if getattr(root, "_remotair_configured", False):
        return
    handler = logging.StreamHandler(sys.stderr)
    if os.environ.get("JOURNAL_STREAM"):
        handler.setFormatter(_JournalFormatter("%(name)s: %(message)s"))
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")
        )
    root.handlers[:] = [handler]
    root._remotair_configured = True  # type: ignore[attr-defined]


class LoggingConfig(Section):
    """What the agent logs."""

    level: Literal["debug", "info", "warning", "error"] = setting("info", "log level")
