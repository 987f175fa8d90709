"""One table of the commands the agent answers, and the one way both transports call them.

A command reaches the agent over the local control socket (``remotair status``, ``remotair sim``)
or over MQTT (``cmd/<name>``). Both hand :meth:`CommandTable.call` the command's name, its
arguments and how it came; the table alone decides whether the command exists, may be called
that way, is small enough, in time and within its rate, checks the arguments against the row's
model, and runs the handler. So ``remotair status`` and ``cmd/status`` cannot drift apart, and a
new command (or a new limit on an old one) is a row, not a mechanism.

Every refusal is an answer with ``ok: false``, a ``code`` a program can branch on and an
``error`` a person can read; the table never raises.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from agent.errors import describe_exception

__all__ = [
    "DEFAULT_MAX_PAYLOAD_BYTES",
    "REQUEST_ID",
    "Command",
    "CommandArgs",
    "CommandError",
    "CommandReply",
    "CommandTable",
    "NoArgs",
    "Outcome",
    "RateLimit",
    "Transport",
]

log = logging.getLogger(__name__)

REQUEST_ID: ContextVar[str | int | None] = ContextVar("request_id", default=None)
"""The ``id`` of the request whose handler is running (None when the sender gave none)."""

DEFAULT_MAX_PAYLOAD_BYTES = 4096
"""Arguments are a few small fields; anything bigger is a mistake or an attack."""


class Transport(enum.StrEnum):
    """How a command reached the agent."""

    LOCAL = "local"
    """The control socket: only the service user and its group can connect (mode 0660)."""
    REMOTE = "remote"
    """MQTT ``cmd/<name>``: anyone the broker lets publish there."""


class Outcome(enum.StrEnum):
    """What became of a call; everything but ``OK`` is answered with ``ok: false``."""

    OK = "ok"
    MALFORMED = "malformed"
    """Not a JSON object, or the transport's own fields are wrong."""
    UNKNOWN = "unknown_command"
    LOCAL_ONLY = "local_only"
    TOO_LARGE = "too_large"
    EXPIRED = "expired"
    REPLY_TOPIC_REFUSED = "reply_topic_refused"
    """An MQTT 5 ResponseTopic outside the device's own topics (and the reply prefix)."""
    RATE_LIMITED = "rate_limited"
    BAD_ARGUMENTS = "bad_arguments"
    FAILED = "failed"
    """The handler refused (:class:`CommandError`) or broke."""


class CommandError(ValueError):
    """A handler's complaint (an unknown camera, not a simulated board); sent back as the error
    text with ``code: failed``."""


class CommandArgs(BaseModel):
    """Base of every argument model: unknown fields are errors, types are not coerced."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class NoArgs(CommandArgs):
    """A command that takes no arguments."""


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most ``calls`` calls in any ``per_s`` seconds (a token bucket holding ``calls``)."""

    calls: int
    per_s: float

    def __post_init__(self) -> None:
        if self.calls < 1 or self.per_s <= 0:
            raise ValueError(f"rate limit {self.calls}/{self.per_s} s: need calls >= 1, per_s > 0")

    def __str__(self) -> str:
        return f"{self.calls} per {self.per_s:g} s"


A = TypeVar("A", bound=CommandArgs)


@dataclass(frozen=True, slots=True)
class Command(Generic[A]):
    """One row of the table."""

    name: str
    args: type[A]
    """The arguments' model; a request's fields other than the transport's own (the control
    socket's ``request``, MQTT's ``id``) are validated against it."""
    handler: Callable[[A], dict[str, Any]]
    summary: str
    """One line for the table's documentation and ``known:`` lists."""
    remote: bool = False
    """May be called over MQTT; every command may be called on the local control socket."""
    rate_limit: RateLimit | None = None
    """Applies to remote calls (each transport keeps its own budget, so a flood over MQTT never
    locks the technician out of the control socket, whose connection slots bound it anyway)."""
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES
    """The request as received (JSON bytes), transports' own fields included."""

    def run(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        """Validate ``arguments`` against the model and run the handler."""
        return self.handler(self.args.model_validate(dict(arguments)))


@dataclass(frozen=True, slots=True)
class CommandReply:
    """The answer to one call, the same whichever transport carries it."""

    name: str
    outcome: Outcome
    result: dict[str, Any] | None = None
    error: str | None = None

    @classmethod
    def malformed(cls, name: str, error: str) -> CommandReply:
        """For a transport that could not read the request far enough to call the table."""
        return cls(name, Outcome.MALFORMED, error=error)

    @classmethod
    def refused(cls, name: str, outcome: Outcome, error: str) -> CommandReply:
        """For a transport that refuses a request before calling the table."""
        log.info("command refused name=%s code=%s error=%s", name, outcome.value, error)
        return cls(name, outcome, error=error)

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.OK

    def to_body(self) -> dict[str, Any]:
        """``{"ok": true, "result": ...}`` or ``{"ok": false, "code": ..., "error": ...}``."""
        if self.ok:
            return {"ok": True, "result": self.result}
        return {"ok": False, "code": self.outcome.value, "error": self.error}


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class CommandTable:
    """The commands by name, their rate budgets, and :meth:`call`.

    ``clock`` (monotonic) paces rate limits; ``wall_clock`` (epoch seconds) judges expiry times,
    which come from outside.
    """

    def __init__(
        self,
        commands: Iterable[Command[Any]],
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.clock = clock
        self.wall_clock = wall_clock
        self._rows: dict[str, Command[Any]] = {}
        for command in commands:
            if command.name in self._rows:
                raise ValueError(f"command {command.name!r} is in the table twice")
            self._rows[command.name] = command
        self._lock = threading.Lock()
        """Guards the rate buckets: each transport calls from several threads."""
        self._buckets: dict[tuple[str, Transport], _Bucket] = {}

    def __getitem__(self, name: str) -> Command[Any]:
        return self._rows[name]

    def __iter__(self) -> Iterator[Command[Any]]:
        return iter(self._rows.values())

    def names(self, transport: Transport) -> list[str]:
        """The commands callable over ``transport``, sorted."""
        return sorted(
            c.name for c in self._rows.values() if c.remote or transport is Transport.LOCAL
        )

    def call(
        self,
        name: str,
        arguments: Mapping[str, Any],
        *,
        transport: Transport,
        payload_bytes: int = 0,
        expires_at: float | None = None,
        request_id: str | int | None = None,
    ) -> CommandReply:
        """Run command ``name`` if the row allows this call; never raises.

        ``payload_bytes`` is the size of the request as received; ``expires_at`` (epoch seconds)
        when the sender said the command goes stale; ``request_id`` the sender's ``id``, which
        the handler reads from :data:`REQUEST_ID` (a long command reports progress under it).
        """
        command = self._rows.get(name)
        if command is None or (transport is Transport.REMOTE and not command.remote):
            if command is not None:
                return self._refuse(
                    name,
                    Outcome.LOCAL_ONLY,
                    f"{name!r} is only available on the board's control socket (remotair CLI)",
                )
            known = ", ".join(self.names(transport))
            return self._refuse(name, Outcome.UNKNOWN, f"unknown command {name!r}; known: {known}")
        if payload_bytes > command.max_payload_bytes:
            return self._refuse(
                name,
                Outcome.TOO_LARGE,
                f"{name} request is {payload_bytes} bytes; at most {command.max_payload_bytes}",
            )
        if expires_at is not None and self.wall_clock() >= expires_at:
            return self._refuse(name, Outcome.EXPIRED, f"{name} expired before it could run")
        if transport is Transport.REMOTE and not self._take_token(command, transport):
            return self._refuse(
                name, Outcome.RATE_LIMITED, f"{name} is limited to {command.rate_limit}; try later"
            )
        token = REQUEST_ID.set(request_id)
        try:
            result = command.run(arguments)
        except ValidationError as exc:
            return self._refuse(name, Outcome.BAD_ARGUMENTS, _describe_validation(name, exc))
        except CommandError as exc:
            return self._refuse(name, Outcome.FAILED, str(exc))
        except Exception as exc:  # a handler bug must not kill the transport's thread
            log.exception("command failed name=%s transport=%s", name, transport.value)
            return self._refuse(name, Outcome.FAILED, describe_exception(exc)[0])
        finally:
            REQUEST_ID.reset(token)
        return CommandReply(name, Outcome.OK, result=result)

    def _take_token(self, command: Command[Any], transport: Transport) -> bool:
        limit = command.rate_limit
        if limit is None:
            return True
        now = self.clock()
        with self._lock:
            bucket = self._buckets.setdefault(
                (command.name, transport), _Bucket(float(limit.calls), now)
            )
            refill = (now - bucket.updated) * limit.calls / limit.per_s
            bucket.tokens = min(float(limit.calls), bucket.tokens + refill)
            bucket.updated = now
            if bucket.tokens < 1.0:
                return False
            bucket.tokens -= 1.0
            return True

    @staticmethod
    def _refuse(name: str, outcome: Outcome, error: str) -> CommandReply:
        return CommandReply.refused(name, outcome, error)


def _describe_validation(name: str, exc: ValidationError) -> str:
    """Every problem with the arguments on one line: ``field: what is wrong (got value)``."""
    parts = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(part) for part in error["loc"]) or "arguments"
        if error["type"] == "extra_forbidden":
            parts.append(f"{where}: not an argument of {name}")
            continue
        got = "" if error["type"] == "missing" else f" (got {error['input']!r})"
        parts.append(f"{where}: {error['msg'].lower()}{got}")
    return f"{name}: " + "; ".join(parts)
