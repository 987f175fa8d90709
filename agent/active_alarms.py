"""The set of active alarms on disk, so that a reboot does not raise an alarm a second time.

The file is small JSON (``{"version": 1, "active": [...]}``), rewritten whole and atomically
(write a temporary file, fsync, rename over the old one, fsync the directory) each time the set
changes. Storage trouble never stops the alarm engine: an unreadable or corrupt file is reported
and the engine starts empty; a failed write is reported once per attempt and the engine goes on
in memory. Pending hold timers and fault counters are deliberately not stored: after a restart a
condition has to hold again for the full hold time, which errs on the side of not flapping.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

logger = logging.getLogger(__name__)

Severity = Literal["warning", "critical"]
SEVERITIES: tuple[Severity, ...] = ("warning", "critical")
STATE_VERSION = 1


class StateFormatError(ValueError):
    """The state file parsed as JSON but does not have the expected shape."""


@dataclass(frozen=True, slots=True)
class ActiveAlarm:
    """An alarm that is raised and not yet cleared; ``value`` is the value that raised it."""

    name: str
    rule: str
    source: str
    severity: Severity
    raised_at: float
    value: float | None
    threshold: float | None
    message: str
    sensors: tuple[str, ...] = ()
    """The sensors that agree on a threshold alarm (one alarm per quantity, not per sensor)."""

    def to_dict(self) -> dict[str, object]:
        """Plain JSON-ready fields, for the state file, the health status and the CLI."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: object) -> ActiveAlarm:
        """Parse one stored entry; raises :class:`StateFormatError` naming the bad field."""
        if not isinstance(data, Mapping):
            raise StateFormatError(f"entry is {type(data).__name__}, expected an object")
        severity = _field(data, "severity", str)
        if severity not in SEVERITIES:
            raise StateFormatError(f"severity {severity!r} is not one of {SEVERITIES}")
        return cls(
            name=_field(data, "name", str),
            rule=_field(data, "rule", str),
            source=_field(data, "source", str),
            severity="critical" if severity == "critical" else "warning",
            raised_at=_number(data, "raised_at"),
            value=_optional_number(data, "value"),
            threshold=_optional_number(data, "threshold"),
            message=_field(data, "message", str),
            sensors=tuple(str(name) for name in data.get("sensors") or () if isinstance(name, str)),
        )


def _field(data: Mapping[object, object], key: str, kind: type[str]) -> str:
    value = data.get(key)
    if not isinstance(value, kind):
        raise StateFormatError(f"field {key!r} is {value!r}, expected {kind.__name__}")
    return value


def _optional_number(data: Mapping[object, object], key: str) -> float | None:
    return None if data.get(key) is None else _number(data, key)


def _number(data: Mapping[object, object], key: str) -> float:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise StateFormatError(f"field {key!r} is {value!r}, expected a finite number")
    return float(value)


class AlarmStateFile:
    """Loads and atomically saves the active alarms at ``path``; never raises on I/O trouble."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._error: str | None = None

    @property
    def error(self) -> str | None:
        """Why the last save failed (None after a good save): the health status reports it."""
        return self._error

    def load(self) -> list[ActiveAlarm]:
        """The stored alarms; an absent file is an empty set, a bad one is logged and ignored."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        except (OSError, UnicodeDecodeError) as exc:
            logger.warning(
                "alarm state unreadable, starting with no active alarms file=%s error=%s",
                self.path,
                exc,
            )
            return []
        try:
            document = json.loads(text)
            if not isinstance(document, dict) or document.get("version") != STATE_VERSION:
                raise StateFormatError(f"expected an object with version {STATE_VERSION}")
            entries = document.get("active")
            if not isinstance(entries, list):
                raise StateFormatError("field 'active' is not a list")
            return [ActiveAlarm.from_dict(entry) for entry in entries]
        except ValueError as exc:  # JSONDecodeError and StateFormatError alike
            logger.warning(
                "alarm state corrupt, starting with no active alarms file=%s error=%s",
                self.path,
                exc,
            )
            return []

    def save(self, alarms: Iterable[ActiveAlarm]) -> bool:
        """Replace the file with ``alarms``; on failure log one warning and return False."""
        document = {"version": STATE_VERSION, "active": [alarm.to_dict() for alarm in alarms]}
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            with open(tmp, "w", encoding="utf-8") as handle:
                json.dump(document, handle, indent=1, sort_keys=True)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
            _fsync_directory(self.path.parent)
        except OSError as exc:
            self._error = f"cannot save alarm state to {self.path}: {exc.strerror or exc}"
            logger.warning(
                "alarm state not saved, keeping alarms in memory file=%s error=%s", self.path, exc
            )
            _remove_quietly(tmp)
            return False
        if self._error is not None:
            logger.info("alarm state saved again file=%s", self.path)
        self._error = None
        return True


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable; some filesystems refuse a directory fsync (harmless)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _remove_quietly(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()
