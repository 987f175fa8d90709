"""The dispatcher never loses a message while the outbox cannot take it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.dispatch import Dispatcher
from agent.outbox import MessageClass, Outbox, OutboxError


class FlakyOutbox(Outbox):
    """A real outbox whose puts fail while ``broken`` (a full or read-only disk)."""

    broken = False

    def put(self, *args: object, **kwargs: object):  # type: ignore[no-untyped-def, override]
        if self.broken:
            raise OutboxError(self.path, "database or disk is full")
        return super().put(*args, **kwargs)  # type: ignore[arg-type]


def test_messages_wait_in_memory_and_move_in_order_when_the_outbox_recovers(
    tmp_path: Path,
) -> None:
    outbox = FlakyOutbox(tmp_path / "o.sqlite", "dev")
    dispatch = Dispatcher(outbox)
    dispatch.send(MessageClass.TELEMETRY, "telemetry", {"n": 0})
    outbox.broken = True
    for n in (1, 2, 3):
        dispatch.send(MessageClass.TELEMETRY, "telemetry", {"n": n})
    assert dispatch.backlog == 3
    assert dispatch.last_error is not None and "disk is full" in dispatch.last_error
    outbox.broken = False
    dispatch.flush()
    assert dispatch.backlog == 0 and dispatch.last_error is None
    bodies = [json.loads(m.payload)["n"] for m in outbox.pending(10)]
    assert bodies == [0, 1, 2, 3]
    outbox.close()


def test_when_memory_is_full_too_telemetry_goes_first_never_alarms(tmp_path: Path) -> None:
    outbox = FlakyOutbox(tmp_path / "o.sqlite", "dev")
    outbox.broken = True
    dispatch = Dispatcher(outbox, backlog_limit=3)
    dispatch.send(MessageClass.ALARM, "alarm/a", {"n": 1})
    for n in range(5):
        dispatch.send(MessageClass.TELEMETRY, "telemetry", {"n": n})
    dispatch.send(MessageClass.ALARM, "alarm/b", {"n": 2})
    assert dispatch.backlog == 3
    assert dispatch.dropped == 4
    outbox.broken = False
    dispatch.flush()
    kinds = [m.kind for m in outbox.pending(10)]
    assert kinds.count(MessageClass.ALARM) == 2
    outbox.close()


@pytest.mark.parametrize("kind", [MessageClass.TELEMETRY, MessageClass.ALARM])
def test_a_healthy_outbox_gets_the_message_at_once(tmp_path: Path, kind: MessageClass) -> None:
    outbox = Outbox(tmp_path / "o.sqlite", "dev")
    Dispatcher(outbox).send(kind, "telemetry" if kind is MessageClass.TELEMETRY else "alarm/x", {})
    assert [m.kind for m in outbox.pending(5)] == [kind]
    outbox.close()


def test_a_message_refused_by_policy_is_set_aside_and_never_blocks_the_alarm_behind_it(
    tmp_path: Path,
) -> None:
    outbox = Outbox(tmp_path / "o.sqlite", "dev", max_messages=2)
    dispatch = Dispatcher(outbox)
    dispatch.send(MessageClass.ALARM, "alarm/a", {"n": 1})
    dispatch.send(MessageClass.ALARM, "alarm/b", {"n": 2})
    dispatch.send(MessageClass.TELEMETRY, "telemetry", {"n": 3})  # full of alarms: refused
    dispatch.send(MessageClass.ALARM, "alarm/c", {"n": 4})
    assert dispatch.backlog == 0
    assert [m.topic.rsplit("/", 1)[-1] for m in outbox.pending(10)] == ["a", "b", "c"]
    assert dispatch.set_aside == 1
    assert dispatch.last_error is None, "a policy refusal is not a broken disk"
    outbox.close()


def test_a_message_that_can_never_be_stored_is_set_aside_not_retried(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.sqlite", "dev")
    dispatch = Dispatcher(outbox)
    dispatch.send(MessageClass.ALARM, "alarm/bad name", {"n": 1})  # not topic-safe
    dispatch.send(MessageClass.TELEMETRY, "telemetry", {"pad": "x" * 200_000})  # too large
    dispatch.send(MessageClass.ALARM, "alarm/good", {"n": 2})
    assert dispatch.backlog == 0 and dispatch.set_aside == 2
    assert [m.topic.rsplit("/", 1)[-1] for m in outbox.pending(10)] == ["good"]
    outbox.close()
