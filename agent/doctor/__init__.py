"""``remotair doctor``'s checklist: every way a board in a plant room is usually broken.

Each check yields :class:`Check` lines (PASS / WARN / FAIL, what was found, a one-line hint on
how to fix it). The checks go from the bottom of the stack up: bus, chips, serial sensors,
cameras (:mod:`~agent.doctor.hardware`), model (:mod:`~agent.doctor.vision`), broker step by step
(DNS, TCP, TLS, MQTT; :mod:`~agent.doctor.broker`), clock, storage, service, agent
(:mod:`~agent.doctor.host`). Every network step and every subprocess is bounded by a timeout.
"""

from agent.doctor.broker import check_broker, check_device_certificate
from agent.doctor.checklist import NETWORK_TIMEOUT_S, Check, Status
from agent.doctor.hardware import check_cameras, check_i2c_bus, check_sensors
from agent.doctor.host import check_agent, check_clock, check_service, check_storage
from agent.doctor.vision import check_model

__all__ = [
    "NETWORK_TIMEOUT_S",
    "Check",
    "Status",
    "check_agent",
    "check_broker",
    "check_cameras",
    "check_clock",
    "check_device_certificate",
    "check_i2c_bus",
    "check_model",
    "check_sensors",
    "check_service",
    "check_storage",
]
