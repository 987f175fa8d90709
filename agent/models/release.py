"""The release fields a signed manifest adds to a model's manifest.

The manifest of :mod:`agent.vision.manifest` describes how to run a model; a release says which
model this is in the fleet's history and where it may run: a model version that only goes up, when
it was made, until when it may be installed (an old, leaked release must not be replayable forever,
as The Update Framework's expiring metadata), and the oldest agent that understands it. They sit at
the top level of the same JSON object, so that one signature covers them with everything else.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from agent.models import VerificationError

MODEL_VERSION = "model_version"
CREATED = "created"
EXPIRES = "expires"
REQUIRES_AGENT = "requires_agent"
SIZE_BYTES = "size_bytes"
SIGNATURE = "signature"


@dataclass(frozen=True, slots=True)
class Release:
    """Model version, creation and expiry time, minimum agent version, and the signer's key id."""

    model_version: int | None = None
    created: datetime | None = None
    expires: datetime | None = None
    requires_agent: str | None = None
    size_bytes: int | None = None
    """The model file's size: the download's cap and the free space an install needs."""
    key_id: str | None = None
    """Key id of the signature's key, as written in the manifest (checked only by verification)."""

    @classmethod
    def from_manifest(cls, data: Mapping[str, Any]) -> Release:
        """The release fields; :class:`VerificationError` ("invalid manifest") when malformed."""
        try:
            version = data.get(MODEL_VERSION)
            if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
                raise ValueError(f"{MODEL_VERSION} must be an integer, not {version!r}")
            size = data.get(SIZE_BYTES)
            if size is not None and (isinstance(size, bool) or not isinstance(size, int)):
                raise ValueError(f"{SIZE_BYTES} must be an integer, not {size!r}")
            requires = data.get(REQUIRES_AGENT)
            if requires is not None:
                parse_version(str(requires))
            signature = data.get(SIGNATURE)
            key_id = signature.get("key_id") if isinstance(signature, Mapping) else None
            return cls(
                model_version=version,
                created=_time(data.get(CREATED), CREATED),
                expires=_time(data.get(EXPIRES), EXPIRES),
                requires_agent=str(requires) if requires is not None else None,
                size_bytes=size,
                key_id=str(key_id) if key_id is not None else None,
            )
        except ValueError as exc:
            raise VerificationError("invalid manifest", str(exc)) from exc

    def is_expired(self, now: datetime) -> bool:
        return self.expires is not None and now >= self.expires

    def runs_on(self, agent_version: str) -> bool:
        """True when ``agent_version`` is at least :attr:`requires_agent`."""
        if self.requires_agent is None:
            return True
        return parse_version(agent_version) >= parse_version(self.requires_agent)

    def to_dict(self) -> dict[str, Any]:
        return {
            MODEL_VERSION: self.model_version,
            CREATED: format_time(self.created) if self.created else None,
            EXPIRES: format_time(self.expires) if self.expires else None,
            REQUIRES_AGENT: self.requires_agent,
            SIZE_BYTES: self.size_bytes,
            "signer": self.key_id,
        }


def format_time(moment: datetime) -> str:
    """UTC ISO 8601 with a ``Z``, to the second (the form written into manifests)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_version(text: str) -> tuple[int, ...]:
    """``"0.1.0"`` -> ``(0, 1)``; trailing zeros and suffixes (``+source``, ``rc1``) dropped."""
    match = re.match(r"\s*v?(\d+(?:\.\d+)*)", text)
    if not match:
        raise ValueError(f"{text!r} is not a version like 0.1.0")
    parts = [int(p) for p in match.group(1).split(".")]
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def _time(value: object, key: str) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError as exc:
        raise ValueError(f"{key} {value!r} is not an ISO 8601 time") from exc
    if moment.tzinfo is None:
        raise ValueError(f"{key} {value!r} has no time zone (write it in UTC, ending in Z)")
    return moment.astimezone(UTC)
