"""Validate what the board publishes against the JSON Schemas of ``docs/schemas/``.

The schemas are the written contract (wire format version 1, ``docs/wire-format.md``); the broker
fixtures of ``tests/agent/conftest.py`` run every message a test receives through
:func:`check_message`, so the contract and the code cannot drift apart without a test failing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match
from referencing import Registry, Resource

SCHEMAS = Path(__file__).resolve().parents[2] / "docs" / "schemas"

COMMAND_SCHEMA = "command"
"""Commands are published to the board, not by it: tests deliberately send malformed ones."""

# The last levels of a topic under <topic_root>/<device>/ -> the schema of its payload. The root
# may have any depth, so "<kind>/<name>" is tried first: cmd/status is a command named status.
_NAMED_TOPIC = re.compile(r"^.+/(?P<device>[^/]+)/(?P<kind>vision|alarm|result|cmd)/[^/]+$")
_SINGLE_TOPIC = re.compile(r"^.+/(?P<device>[^/]+)/(?P<kind>telemetry|status|model)$")
_KIND_SCHEMA = {"cmd": COMMAND_SCHEMA}
# Home Assistant discovery: <prefix>/<component>/<node_id>/<object_id>/config.
_DISCOVERY_TOPIC = re.compile(r"^[^/]+/[^/]+/[^/]+/[^/]+/config$")


@cache
def _registry() -> Registry[Any]:
    resources = []
    for path in sorted(SCHEMAS.glob("*.schema.json")):
        contents = json.loads(path.read_text(encoding="utf-8"))
        resources.append((contents["$id"], Resource.from_contents(contents)))
    return Registry().with_resources(resources)


@cache
def validator(name: str) -> Draft202012Validator:
    """The validator of ``docs/schemas/<name>.schema.json`` (its ``$ref`` s resolved)."""
    schema = json.loads((SCHEMAS / f"{name}.schema.json").read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, registry=_registry())


def schema_name(topic: str) -> tuple[str, str | None] | None:
    """(schema name, device id from the topic) for a topic of wire format v1, else None."""
    match = _NAMED_TOPIC.match(topic) or _SINGLE_TOPIC.match(topic)
    if match:
        return _KIND_SCHEMA.get(match["kind"], match["kind"]), match["device"]
    if _DISCOVERY_TOPIC.match(topic):
        return "discovery", None
    return None


def check_message(
    topic: str,
    payload: bytes,
    *,
    schema: str | None = None,
    envelope_only: Collection[str] = (),
) -> str | None:
    """None if the message fits its schema, else one line naming the topic and the error.

    ``schema`` forces a schema (an MQTT 5 ResponseTopic outside the device's tree carries a
    result). Messages whose schema is in ``envelope_only`` are checked against the envelope only:
    a test of the MQTT link that publishes made-up bodies says so. Commands are not checked.
    """
    found = (schema, None) if schema else schema_name(topic)
    if found is None:
        return f"{topic}: no wire-format schema for this topic (docs/schemas/)"
    name, device = found
    if name == COMMAND_SCHEMA:
        return None
    try:
        document = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return f"{topic}: payload is not UTF-8 JSON ({exc})"
    checked = "envelope" if name in envelope_only else name
    error = best_match(validator(checked).iter_errors(document))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(top level)"
        return f"{topic}: does not fit {checked}.schema.json at {where}: {error.message}"
    if device is not None and isinstance(document, dict) and document.get("device") != device:
        return f"{topic}: envelope device {document.get('device')!r} is not the topic's {device!r}"
    return None
