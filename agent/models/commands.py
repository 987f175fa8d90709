"""The model rows of the agent's command table: ``model_install``, ``model_rollback``.

Both block their worker until the install has ended, so that the command's result (with the
request's ``id`` and MQTT 5 correlation data) is its outcome; the steps on the way are published
retained on ``model``. A failed install answers ``ok: false`` with ``check: reason``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from agent.command_table import REQUEST_ID, Command, CommandArgs, CommandError, RateLimit
from agent.models.install import InstallReport, InstallRequest
from agent.models.runtime import ModelRuntime

MAX_MANIFEST_PAYLOAD_BYTES = 120_000
"""A manifest with its reference images is some 40 KB; the wire format's limit is 128 KB."""


class ModelInstallArgs(CommandArgs):
    manifest: dict[str, Any]
    """The signed manifest (as ``remotair model sign`` wrote it)."""
    url: str
    """Where the model file is: ``https://...`` or ``file:///...``."""


class ModelRollbackArgs(CommandArgs):
    manifest: dict[str, Any] | None = None
    """An older signed release to go back to; without it, back to the previous model."""
    url: str | None = None


def model_commands(runtime: Callable[[], ModelRuntime | None]) -> list[Command[Any]]:
    """The rows; ``runtime`` gives the agent's model runtime (None while vision is off)."""

    def running() -> ModelRuntime:
        found = runtime()
        if found is None:
            raise CommandError("vision is off on this board: there is no model to manage")
        return found

    def install(args: ModelInstallArgs) -> dict[str, Any]:
        request = InstallRequest(_request_id(), args.manifest, args.url)
        return _outcome(running().install(request))

    def rollback(args: ModelRollbackArgs) -> dict[str, Any]:
        if args.manifest is None:
            return _outcome(running().rollback(_request_id()))
        if args.url is None:
            raise CommandError("model_rollback with a manifest needs its url too")
        request = InstallRequest(_request_id(), args.manifest, args.url, allow_downgrade=True)
        return _outcome(running().install(request))

    return [
        Command(
            name="model_install",
            args=ModelInstallArgs,
            handler=install,
            summary="download, verify, test and switch to a signed model",
            remote=True,
            rate_limit=RateLimit(4, 60.0),
            max_payload_bytes=MAX_MANIFEST_PAYLOAD_BYTES,
        ),
        Command(
            name="model_rollback",
            args=ModelRollbackArgs,
            handler=rollback,
            summary="back to the previous model, or install an older signed one",
            remote=True,
            rate_limit=RateLimit(4, 60.0),
            max_payload_bytes=MAX_MANIFEST_PAYLOAD_BYTES,
        ),
    ]


def _request_id() -> str:
    given = REQUEST_ID.get()
    return str(given) if given is not None else f"local-{time.strftime('%Y%m%dT%H%M%S')}"


def _outcome(report: InstallReport) -> dict[str, Any]:
    if not report.ok:
        raise CommandError(f"{report.check}: {report.reason}")
    return report.to_dict()
