"""The checklist's line: what each of ``remotair doctor``'s checks yields, and their bounds."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from typing import Literal

Status = Literal["PASS", "WARN", "FAIL"]

NETWORK_TIMEOUT_S = 5.0
SUBPROCESS_TIMEOUT_S = 3.0
CERT_WARN_DAYS = 30
LOW_SPACE_BYTES = 100 * 1024 * 1024
LOW_SPACE_FRACTION = 0.05
CRITICAL_SPACE_BYTES = 10 * 1024 * 1024
SERVICE = "remotair-agent"


@dataclass(frozen=True, slots=True)
class Check:
    """One line of the checklist."""

    group: str
    name: str
    status: Status
    detail: str
    hint: str = ""

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def _pass(group: str, name: str, detail: str) -> Check:
    return Check(group, name, "PASS", detail)


def _warn(group: str, name: str, detail: str, hint: str) -> Check:
    return Check(group, name, "WARN", detail, hint)


def _fail(group: str, name: str, detail: str, hint: str) -> Check:
    return Check(group, name, "FAIL", detail, hint)


def today_utc() -> str:
    """The board clock's date, for messages that compare it with a certificate's or NTP's."""
    return dt.datetime.now(dt.UTC).date().isoformat()
