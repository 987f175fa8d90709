"""The throwaway RabbitMQ node: a failed boot says why and leaves nothing behind.

A node that boots is exercised by the broker matrix (tests/agent/test_broker_matrix.py,
tests/agent/test_mqtt.py), whose session fixture checks ``leftovers()`` after ``close()``.
"""

from __future__ import annotations

import pytest

from hil.broker import BrokerError
from hil.rabbitmq import RabbitMqBroker

pytestmark = pytest.mark.broker


def test_a_node_that_cannot_boot_names_the_cause_and_leaves_nothing_running() -> None:
    node = RabbitMqBroker(extra_config="mqtt.prefetch = lots\n")
    with pytest.raises(BrokerError) as failure:
        node.start()
    message = str(failure.value)
    assert "RabbitMQ exited" in message, message
    assert "failed_to_prepare_configuration" in message, "the node's own words are quoted"
    assert node.leftovers() == []
    assert not node.running
