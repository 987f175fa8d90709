"""The example messages of docs/wire-format.md fit the schemas they illustrate.

A reader copies the examples; a consumer is written against them. Every ``<topic> <payload>``
pair in the page's code blocks (payload on the same line or the next) is checked with the same
validator the integration tests run on every message they receive.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from agent.command_table import Outcome
from tests.support.wire_schemas import check_message

PAGE = Path(__file__).resolve().parents[2] / "docs" / "wire-format.md"
_BLOCK = re.compile(r"^```\n(.*?)^```", re.DOTALL | re.MULTILINE)
_TOPIC = re.compile(r"^(remotair/v1/\S+)(?:\s+\(.*\))?(?:\s+(\{.*\}))?$")


def examples() -> list[tuple[str, str]]:
    """(topic, payload) pairs, in page order."""
    found = []
    for block in _BLOCK.findall(PAGE.read_text(encoding="utf-8")):
        lines = block.splitlines()
        for i, line in enumerate(lines):
            match = _TOPIC.match(line)
            if not match:
                continue
            payload = match[2] or (lines[i + 1] if i + 1 < len(lines) else "")
            if payload.startswith("{"):
                found.append((match[1], payload))
    return found


def test_the_page_has_an_example_of_every_message_class() -> None:
    kinds = {topic.split("/")[3] for topic, _ in examples()}
    assert {"telemetry", "vision", "alarm", "status", "cmd", "result"} <= kinds


def test_every_example_fits_its_schema() -> None:
    errors = [
        error
        for topic, payload in examples()
        if (error := check_message(topic, payload.encode("utf-8"))) is not None
    ]
    assert not errors, "\n".join(errors)


def test_every_refusal_code_is_documented_and_in_the_result_schema() -> None:
    page = PAGE.read_text(encoding="utf-8")
    schema = json.loads((PAGE.parent / "schemas" / "result.schema.json").read_text("utf-8"))
    in_schema = set(schema["properties"]["code"]["enum"])
    codes = {outcome.value for outcome in Outcome if outcome is not Outcome.OK}
    assert codes == in_schema, "result.schema.json code enum vs agent/command_table.py Outcome"
    undocumented = sorted(c for c in codes if f"| `{c}` |" not in page)
    assert not undocumented, f"docs/wire-format.md has no row for the code(s) {undocumented}"
