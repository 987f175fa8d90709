"""The command table: one lookup, one set of refusals, for every transport."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import Field

from agent.command_table import (
    Command,
    CommandArgs,
    CommandError,
    CommandTable,
    NoArgs,
    Outcome,
    RateLimit,
    Transport,
)

LOCAL, REMOTE = Transport.LOCAL, Transport.REMOTE


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class CountArgs(CommandArgs):
    limit: int = Field(default=5, ge=0, le=10)


def count(args: CountArgs) -> dict[str, Any]:
    return {"limit": args.limit}


def refuse(_: NoArgs) -> dict[str, Any]:
    raise CommandError("no camera 'x'")


def bug(_: NoArgs) -> dict[str, Any]:
    return {"value": 1 // 0}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def table(clock: FakeClock) -> CommandTable:
    return CommandTable(
        [
            Command("count", CountArgs, count, "counts", remote=True, rate_limit=RateLimit(2, 10)),
            Command("refuse", NoArgs, refuse, "refuses", remote=True),
            Command("bug", NoArgs, bug, "breaks", remote=True),
            Command("local", NoArgs, lambda _: {}, "local only", max_payload_bytes=10),
        ],
        clock=clock,
        wall_clock=clock,
    )


def test_a_call_validates_its_arguments_and_answers_the_handlers_result(
    table: CommandTable,
) -> None:
    reply = table.call("count", {"limit": 3}, transport=LOCAL)
    assert reply.ok and reply.to_body() == {"ok": True, "result": {"limit": 3}}
    assert table.call("count", {}, transport=LOCAL).result == {"limit": 5}


def test_bad_arguments_are_all_named_on_one_line(table: CommandTable) -> None:
    reply = table.call("count", {"limit": 11, "colour": "red"}, transport=LOCAL)
    assert reply.outcome is Outcome.BAD_ARGUMENTS
    assert reply.error is not None and "\n" not in reply.error
    assert "limit: input should be less than or equal to 10 (got 11)" in reply.error
    assert "colour: not an argument of count" in reply.error
    strict = table.call("count", {"limit": "3"}, transport=LOCAL)
    assert strict.outcome is Outcome.BAD_ARGUMENTS, "no coercion of a string to a number"


def test_unknown_commands_answer_ok_false_and_list_what_this_transport_may_call(
    table: CommandTable,
) -> None:
    remote = table.call("reboot", {}, transport=REMOTE)
    assert remote.to_body() == {
        "ok": False,
        "code": "unknown_command",
        "error": "unknown command 'reboot'; known: bug, count, refuse",
    }
    local = table.call("reboot", {}, transport=LOCAL)
    assert local.error is not None and local.error.endswith("known: bug, count, local, refuse")


def test_a_local_only_command_is_refused_over_mqtt_and_runs_locally(table: CommandTable) -> None:
    assert table.call("local", {}, transport=REMOTE).outcome is Outcome.LOCAL_ONLY
    assert table.call("local", {}, transport=LOCAL).ok


def test_handler_refusals_and_bugs_are_failures_not_exceptions(table: CommandTable) -> None:
    refused = table.call("refuse", {}, transport=REMOTE)
    assert (refused.outcome, refused.error) == (Outcome.FAILED, "no camera 'x'")
    broken = table.call("bug", {}, transport=REMOTE)
    assert broken.outcome is Outcome.FAILED
    assert broken.error == "ZeroDivisionError: integer division or modulo by zero"


def test_the_payload_cap_is_checked_before_anything_runs(table: CommandTable) -> None:
    reply = table.call("local", {}, transport=LOCAL, payload_bytes=11)
    assert reply.outcome is Outcome.TOO_LARGE and "at most 10" in str(reply.error)
    assert table.call("local", {}, transport=LOCAL, payload_bytes=10).ok


def test_an_expired_command_is_answered_expired_not_run(
    table: CommandTable, clock: FakeClock
) -> None:
    assert table.call("count", {}, transport=LOCAL, expires_at=clock.now).outcome is Outcome.EXPIRED
    assert table.call("count", {}, transport=LOCAL, expires_at=clock.now + 1).ok


def test_the_rate_limit_refills_over_time_and_spares_the_control_socket(
    table: CommandTable, clock: FakeClock
) -> None:
    assert [table.call("count", {}, transport=REMOTE).ok for _ in range(3)] == [True, True, False]
    limited = table.call("count", {}, transport=REMOTE)
    assert limited.outcome is Outcome.RATE_LIMITED and "2 per 10 s" in str(limited.error)
    assert table.call("count", {}, transport=LOCAL).ok, "a flood over MQTT never locks out"
    clock.now += 5.0  # one token back (2 per 10 s)
    assert [table.call("count", {}, transport=REMOTE).ok for _ in range(2)] == [True, False]


def test_a_name_twice_in_the_table_is_a_programming_error() -> None:
    row = Command("count", CountArgs, count, "counts")
    with pytest.raises(ValueError, match="twice"):
        CommandTable([row, row])
