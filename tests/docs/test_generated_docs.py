"""The generated parts of docs/ match what the code generates today.

A table in a doc that is written by hand drifts from the code the day a key is added. Each
generated region sits between ``<!-- BEGIN name -->`` and ``<!-- END name -->`` markers; this test
compares it with its generator and fails naming the file and the command that rewrites it.
``REMOTAIR_UPDATE_DOCS=1 pytest tests/docs`` rewrites every region in place (then review the diff).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Literal, get_origin

import annotated_types
import pytest
from pydantic.fields import FieldInfo

from agent.agent_commands import agent_commands
from agent.command_table import Command
from agent.config import reference_markdown
from drivers.registry import sensor_table_markdown

DOCS = Path(__file__).resolve().parents[2] / "docs"

_TYPE_NAMES = {int: "integer", str: "string", bool: "boolean", float: "number"}


def _argument(name: str, field: FieldInfo) -> str:
    """``limit`` (integer 0-1000, default 20)."""
    annotation = field.annotation
    args = [a for a in getattr(annotation, "__args__", ()) if a is not type(None)]
    base = annotation if get_origin(annotation) is dict else (args[0] if args else annotation)
    if base is dict or get_origin(base) is dict:
        kind = "object"  # a JSON object (model_install's manifest)
    elif get_origin(annotation) is Literal:
        kind = "one of " + " \\| ".join(str(a) for a in args)  # sim's fault
    else:
        kind = _TYPE_NAMES.get(base, str(annotation))  # type: ignore[arg-type]
    low = next((m.ge for m in field.metadata if isinstance(m, annotated_types.Ge)), None)
    high = next((m.le for m in field.metadata if isinstance(m, annotated_types.Le)), None)
    if low is not None and high is not None:
        kind += f" {low}-{high}"
    default = "required" if field.is_required() else f"default {field.default!r}"
    return f"`{name}` ({kind}, {default})".replace("default None", "optional")


def command_table_markdown() -> str:
    """The agent's command table, row by row (agent/agent_commands.py)."""

    def row(c: Command[object]) -> str:  # type: ignore[type-var]
        arguments = ", ".join(_argument(n, f) for n, f in c.args.model_fields.items()) or "none"
        mqtt = "yes" if c.remote else "no (control socket only)"
        limit = str(c.rate_limit) if c.rate_limit else "-"
        return f"| `{c.name}` | {arguments} | {mqtt} | {limit} | {c.summary} |"

    lines = [
        "| command | arguments | over MQTT | rate limit (MQTT) | what it does |",
        "| --- | --- | --- | --- | --- |",
        *(row(c) for c in agent_commands(None)),  # type: ignore[arg-type]
    ]
    return "\n".join(lines)


# (file under docs/, region name, generator)
GENERATED: list[tuple[str, str, Callable[[], str]]] = [
    ("configuration.md", "config reference", reference_markdown),
    ("configuration.md", "sensor table", sensor_table_markdown),
    ("hardware.md", "sensor table", sensor_table_markdown),
    ("wire-format.md", "command table", command_table_markdown),
]


def region(name: str) -> re.Pattern[str]:
    """The text between a region's markers (markers on their own lines)."""
    return re.compile(
        rf"(<!-- BEGIN {re.escape(name)} -->\n)(.*?)(<!-- END {re.escape(name)} -->)", re.DOTALL
    )


@pytest.mark.parametrize(("filename", "name", "generate"), GENERATED, ids=[g[1] for g in GENERATED])
def test_generated_region_is_up_to_date(
    filename: str, name: str, generate: Callable[[], str]
) -> None:
    path = DOCS / filename
    text = path.read_text(encoding="utf-8")
    match = region(name).search(text)
    assert match, f"docs/{filename}: no <!-- BEGIN {name} --> ... <!-- END {name} --> region"
    expected = generate().rstrip("\n") + "\n"
    if match.group(2) == expected:
        return
    if os.environ.get("REMOTAIR_UPDATE_DOCS") == "1":
        updated = text[: match.start(2)] + expected + text[match.end(2) :]
        path.write_text(updated, encoding="utf-8")
        return
    pytest.fail(
        f"docs/{filename}: the generated region '{name}' is out of date; "
        f"rewrite it with `REMOTAIR_UPDATE_DOCS=1 pytest tests/docs` and review the diff",
        pytrace=False,
    )
