"""Home Assistant MQTT discovery: the board shows up in Home Assistant by itself.

One Home Assistant device per board, one entity per (sensor, quantity) reading from the
``telemetry`` topic, one entity per camera for the visual verdict reading from ``vision/<camera>``.
Availability follows the retained ``status`` topic (``online``/``offline``, the last will included),
and ``expire_after`` turns an entity unavailable when its readings stop (a dead sensor or camera).
A reading the telemetry message does not carry (a sensor fault) renders as ``None``, which Home
Assistant shows as "unknown": never a made-up value.

The configs are retained and travel through the outbox as ``MessageClass.DISCOVERY`` (latest per
topic, outside the ``remotair/v1`` envelope: Home Assistant reads their keys as configuration).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from agent import wire
from agent.outbox import Outbox
from drivers.registry import CHIPS, QUANTITIES

DEFAULT_PREFIX = "homeassistant"
MANUFACTURER = "Remotair"
MODEL = "HVAC duct-hygiene board"


@dataclass(frozen=True, slots=True)
class Presentation:
    """How one measured quantity looks in Home Assistant (label and unit: the chip registry)."""

    device_class: str
    precision: int


PRESENTATION: Mapping[str, Presentation] = {
    "co2_ppm": Presentation("carbon_dioxide", 0),
    "humidity_rh": Presentation("humidity", 1),
    "temperature_c": Presentation("temperature", 1),
    "pressure_pa": Presentation("pressure", 0),
    "differential_pressure_pa": Presentation("pressure", 1),
}
"""One entry per quantity of :data:`drivers.registry.QUANTITIES` (a test keeps them equal)."""

VERDICT_LABELS = ("clean", "dirty")


def discovery_messages(
    device_id: str,
    device_name: str,
    sensors: Sequence[tuple[str, str]],
    cameras: Sequence[str],
    *,
    prefix: str = DEFAULT_PREFIX,
    topic_root: str = wire.TOPIC_ROOT,
    expire_after_s: int,
    verdict_expire_after_s: int | None = None,
    status_expire_after_s: int | None = None,
    sw_version: str | None = None,
) -> list[tuple[str, dict[str, object]]]:
    """(topic, config) for every entity of this board.

    ``sensors`` holds (sensor name, quantity) pairs (see :func:`sensor_quantities`).
    ``expire_after_s`` should be a few sensor intervals; ``verdict_expire_after_s`` and
    ``status_expire_after_s`` (default: the same) a few snapshot and status intervals. Besides
    the readings and verdicts, two board entities read the retained ``status``: the number of
    active alarms (their names as attributes) and the outbox depth.
    """
    wire.check_name(device_id, "device id")
    wire.check_topic_root(prefix)
    if expire_after_s < 1:
        raise wire.WireError(f"expire_after_s {expire_after_s} must be at least 1 s")
    verdict_expire = (
        verdict_expire_after_s if verdict_expire_after_s is not None else expire_after_s
    )
    device: dict[str, object] = {
        "identifiers": [f"remotair_{device_id}"],
        "name": device_name,
        "manufacturer": MANUFACTURER,
        "model": MODEL,
    }
    if sw_version is not None:
        device["sw_version"] = sw_version
    availability = [
        {
            "topic": wire.status_topic(device_id, topic_root=topic_root),
            "value_template": "{{ value_json.state }}",
            "payload_available": "online",
            "payload_not_available": "offline",
        }
    ]
    telemetry = wire.telemetry_topic(device_id, topic_root=topic_root)
    messages: list[tuple[str, dict[str, object]]] = []
    for sensor, quantity_name in sensors:
        wire.check_name(sensor, "sensor name")
        quantity = QUANTITIES.get(quantity_name)
        look = PRESENTATION.get(quantity_name)
        if quantity is None or look is None:
            raise wire.WireError(
                f"sensor {sensor}: quantity {quantity_name!r} is not one of {', '.join(QUANTITIES)}"
            )
        object_id = f"{sensor}_{quantity_name}"
        config: dict[str, object] = {
            "name": f"{sensor} {quantity.label}",
            "unique_id": f"remotair_{device_id}_{object_id}",
            "state_topic": telemetry,
            "value_template": (
                f"{{{{ value_json.get('sensors', {{}}).get('{sensor}', {{}})"
                f".get('{quantity_name}') }}}}"
            ),
            "device_class": look.device_class,
            "unit_of_measurement": quantity.unit,
            "state_class": "measurement",
            "suggested_display_precision": look.precision,
            "expire_after": expire_after_s,
            "availability": availability,
            "device": device,
        }
        messages.append((_config_topic(prefix, "sensor", device_id, object_id), config))
    for camera in cameras:
        wire.check_name(camera, "camera")
        vision = wire.vision_topic(device_id, camera, topic_root=topic_root)
        object_id = f"{camera}_verdict"
        config = {
            "name": f"{camera} visual verdict",
            "unique_id": f"remotair_{device_id}_{object_id}",
            "state_topic": vision,
            "value_template": "{{ value_json.label }}",
            "device_class": "enum",
            "options": list(VERDICT_LABELS),
            "json_attributes_topic": vision,
            "json_attributes_template": (
                "{{ {'confidence': value_json.confidence, 'backend': value_json.backend,"
                " 'model': value_json.model, 'latency_ms': value_json.latency_ms} | tojson }}"
            ),
            "icon": "mdi:air-filter",
            "expire_after": verdict_expire,
            "availability": availability,
            "device": device,
        }
        messages.append((_config_topic(prefix, "sensor", device_id, object_id), config))
    status = wire.status_topic(device_id, topic_root=topic_root)
    status_expire = status_expire_after_s if status_expire_after_s is not None else expire_after_s
    for object_id, config in _board_entities(status).items():
        config |= {
            "unique_id": f"remotair_{device_id}_{object_id}",
            "state_class": "measurement",
            "expire_after": status_expire,
            "availability": availability,
            "device": device,
        }
        messages.append((_config_topic(prefix, "sensor", device_id, object_id), config))
    return messages


def _board_entities(status: str) -> dict[str, dict[str, object]]:
    """The board's own health as entities, from the health document on ``status`` (the last
    will carries neither key: unknown, and availability turns the entity offline anyway)."""
    return {
        "active_alarms": {
            "name": "active alarms",
            "state_topic": status,
            "value_template": (
                "{{ value_json.alarms | length if 'alarms' in value_json else None }}"
            ),
            "json_attributes_topic": status,
            "json_attributes_template": (
                "{{ {'alarms': value_json.get('alarms', []) | map(attribute='name') | list}"
                " | tojson }}"
            ),
            "icon": "mdi:alarm-light",
        },
        "outbox_depth": {
            "name": "outbox depth",
            "state_topic": status,
            "value_template": ("{{ value_json.outbox.depth if 'outbox' in value_json else None }}"),
            "unit_of_measurement": "messages",
            "icon": "mdi:tray-full",
        },
    }


def sensor_quantities(chips: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """(sensor name, quantity) for each quantity the registry lists for each (name, chip)."""
    return [(name, q) for name, chip in chips if chip in CHIPS for q in CHIPS[chip].quantities]


def queue_discovery(outbox: Outbox, messages: Sequence[tuple[str, dict[str, object]]]) -> int:
    """Put every config in the outbox, retained, as class discovery; returns how many."""
    for topic, config in messages:
        outbox.put_discovery(topic, config)
    return len(messages)


def _config_topic(prefix: str, component: str, node_id: str, object_id: str) -> str:
    return wire.validate_topic(f"{prefix}/{component}/{node_id}/{object_id}/config")
