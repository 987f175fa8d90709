"""The MQTT link: one module a job.

* :mod:`~agent.mqtt.settings`: what the link is configured with;
* :mod:`~agent.mqtt.tls`: the TLS client context (shared with ``remotair doctor``);
* :mod:`~agent.mqtt.session`: one connection attempt (paho client, in-flight window);
* :mod:`~agent.mqtt.drain`: the sender thread that drains the outbox into the session;
* :mod:`~agent.mqtt.commands`: commands on ``cmd/<name>`` and their results;
* :mod:`~agent.mqtt.link`: the network thread, reconnection and the public :class:`MqttLink`;
* :mod:`~agent.mqtt.describe`: one plain line per connection failure.
"""

from agent.mqtt.drain import DELETE_BATCH
from agent.mqtt.link import LinkState, MqttLink, backoff_delay
from agent.mqtt.session import HANDOVER_FACTOR
from agent.mqtt.settings import MqttError, MqttSettings, TlsSettings

__all__ = [
    "DELETE_BATCH",
    "HANDOVER_FACTOR",
    "LinkState",
    "MqttError",
    "MqttLink",
    "MqttSettings",
    "TlsSettings",
    "backoff_delay",
]
