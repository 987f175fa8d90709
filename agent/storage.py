"""The ``[storage]`` section: where the outbox, the alarm state and the snapshots live, and bounds.

The outbox (:mod:`agent.outbox`) takes its bounds from here, the snapshot taker its retention.
"""

from __future__ import annotations

from pathlib import Path

from agent.config_base import ConfigPath, Section, setting


class StorageConfig(Section):
    """Where the outbox, alarm state and snapshots live."""

    dir: ConfigPath = setting(
        Path("/var/lib/remotair"),
        "state directory",
        auto="$STATE_DIRECTORY when systemd sets it, else /var/lib/remotair",
    )
    outbox_max_messages: int = setting(100_000, "outbox bound in messages", ge=1)
    outbox_max_mb: float = setting(64.0, "outbox bound in megabytes", gt=0)
    snapshots_keep: int = setting(500, "snapshots kept on disk, oldest deleted first", ge=0)

    @property
    def outbox_max_bytes(self) -> int:
        """``outbox_max_mb`` in bytes."""
        return int(self.outbox_max_mb * 1024 * 1024)
