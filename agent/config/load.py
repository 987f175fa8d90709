"""Load ``agent.toml``: TOML, environment overrides, systemd defaults, then the models validate.

Pydantic's errors are turned into the lines users read: the file (or the environment variable)
and the dotted key in every line, a did-you-mean on unknown keys, every problem at once, in the
order of the file's sections.
"""

from __future__ import annotations

import difflib
import json
import logging
import os
import re
import socket
import tomllib
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, TypeAlias

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from agent.config.model import Config
from agent.config_base import Section
from agent.errors import ExitCode, RemotairError

_log = logging.getLogger(__name__)

DEFAULT_CONFIG_PATH = Path("/etc/remotair/agent.toml")
ENV_DEVICE_ID = "REMOTAIR_DEVICE_ID"
ENV_MQTT_HOST = "REMOTAIR_MQTT_HOST"
ENV_MQTT_PORT = "REMOTAIR_MQTT_PORT"
_OVERRIDES: tuple[tuple[str, str, str, bool], ...] = (
    (ENV_DEVICE_ID, "device", "id", False),
    (ENV_MQTT_HOST, "mqtt", "host", False),
    (ENV_MQTT_PORT, "mqtt", "port", True),
)

_Where: TypeAlias = tuple[str | int, ...]
_PROBLEMS_LAST = 1_000_000
"""Sort key of a section's cross-field problems: after the errors of its own keys."""


class ConfigError(RemotairError):
    """The configuration is not usable. ``errors`` holds every problem found, one line each."""

    exit_code = ExitCode.USAGE

    def __init__(self, errors: Sequence[str]) -> None:
        self.errors: tuple[str, ...] = tuple(errors)
        if len(self.errors) == 1:
            text = self.errors[0]
        else:
            text = f"{len(self.errors)} configuration errors:\n" + "\n".join(
                f"  {line}" for line in self.errors
            )
        super().__init__(text)


def load_config(path: Path | None, *, env: Mapping[str, str] = os.environ) -> Config:
    """Read and validate ``path`` (``None``: the defaults, i.e. the built-in simulated board).

    Environment overrides (``REMOTAIR_DEVICE_ID``, ``REMOTAIR_MQTT_HOST``,
    ``REMOTAIR_MQTT_PORT``) and systemd's directories and credentials come from ``env``.
    Raises :class:`ConfigError` listing every problem.
    """
    if path is None:
        return parse_config("", source="<defaults>", env=env)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{path}: no such configuration file"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{path}: cannot read: {exc}"]) from None
    return parse_config(text, source=str(path), env=env, base_dir=path.parent)


def parse_config(
    text: str,
    *,
    source: str = "<string>",
    env: Mapping[str, str] = os.environ,
    base_dir: Path | None = None,
) -> Config:
    """Validate TOML ``text``; ``source`` names it in messages, relative paths use ``base_dir``."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{source}: TOML syntax error: {exc}"]) from None
    origins = _apply_environment(document, env)
    _fill_automatic(document, env)
    context = {"base_dir": base_dir or Path.cwd(), "env": env, "defer_problems": True}
    config: Config | None = None
    errors: list[Any] = []
    try:
        config = Config.model_validate(document, context=context)
    except ValidationError as exc:
        errors = exc.errors()
    problems: list[tuple[_Where, _Where, str]] = []
    _collect_problems(Config, document, (), [tuple(e["loc"]) for e in errors], context, problems)
    if errors or problems or config is None:
        raise ConfigError(_messages(errors, problems, source, origins))
    config = _read_password(config, source)
    _log.debug(
        "config loaded source=%s device=%s board=%s sensors=%d cameras=%d broker=%s:%d",
        source,
        config.device.id,
        config.board.kind,
        len(config.board.sensors),
        len(config.board.cameras),
        config.mqtt.host,
        config.mqtt.port,
    )
    return config


def default_device_id() -> str:
    """The host name's first label, made topic-safe (``pi.local`` -> ``pi``)."""
    host = socket.gethostname().split(".")[0]
    safe = re.sub(r"[^A-Za-z0-9_-]+", "-", host).strip("-")
    return safe or "remotair"


# -- before validation: the environment and the computed defaults ------------------------------


def _apply_environment(document: dict[str, Any], env: Mapping[str, str]) -> dict[str, str]:
    """Write the overrides into ``document``; returns dotted key -> the variable that set it."""
    origins: dict[str, str] = {}
    for variable, section, key, numeric in _OVERRIDES:
        raw = env.get(variable, "")
        if not raw:
            continue
        table = document.setdefault(section, {})
        if not isinstance(table, dict):
            continue  # the section's own type error is reported
        value: object = raw
        if numeric and re.fullmatch(r"\s*\d+\s*", raw):
            value = int(raw)
        table[key] = value
        origins[f"{section}.{key}"] = variable
    return origins


def _fill_automatic(document: dict[str, Any], env: Mapping[str, str]) -> None:
    """Defaults that depend on the host, systemd or other keys, where the file sets none."""
    device = _table(document, "device")
    if device is not None:
        device.setdefault("id", default_device_id())
        device.setdefault("name", f"Remotair {device['id']}")
    mqtt = _table(document, "mqtt")
    if mqtt is not None and device is not None:
        mqtt.setdefault("client_id", device["id"])
    state = _first_systemd_directory(env.get("STATE_DIRECTORY", ""))
    storage = _table(document, "storage")
    if storage is not None and state is not None:
        storage.setdefault("dir", state)
    runtime = _first_systemd_directory(env.get("RUNTIME_DIRECTORY", ""))
    control = _table(document, "control")
    if control is not None and runtime is not None:
        control.setdefault("socket", f"{runtime}/control.sock")


def _table(document: dict[str, Any], name: str) -> dict[str, Any] | None:
    table = document.setdefault(name, {})
    return table if isinstance(table, dict) else None


def _first_systemd_directory(value: str) -> str | None:
    # systemd joins several StateDirectory=/RuntimeDirectory= entries with ':'.
    first = value.split(":")[0]
    return first or None


def _read_password(config: Config, source: str) -> Config:
    path = config.mqtt.password_file
    if path is None:
        return config
    where = "[mqtt] password_file"
    try:
        text = path.read_text(encoding="utf-8").rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{source}: {where}: cannot read {path}: {exc}"]) from None
    if not text:
        raise ConfigError([f"{source}: {where}: {path} is empty"])
    mqtt = config.mqtt.model_copy(update={"password": text})
    return config.model_copy(update={"mqtt": mqtt})


# -- after validation: pydantic's errors as the lines users read -------------------------------

_EXPECTED = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "string_type": "a string",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "model_type": "a table",
    "model_attributes_type": "a table",
    "dict_type": "a table",
    "tuple_type": "an array of tables",
    "list_type": "an array of tables",
    "path_type": "a path (a non-empty string)",
}


def _collect_problems(
    tp: Any,
    data: object,
    loc: _Where,
    error_locs: Sequence[_Where],
    context: Mapping[str, Any],
    out: list[tuple[_Where, _Where, str]],
) -> None:
    """The cross-field problems of every part of the document that is valid by itself.

    A table without errors inside is validated alone and asked for its problems (its parts'
    first); a table with errors inside cannot be, but its valid parts still are.
    """
    tp = plain_type(tp)
    if typing.get_origin(tp) is tuple and isinstance(data, list):
        for i, item in enumerate(data):
            _collect_problems(typing.get_args(tp)[0], item, (*loc, i), error_locs, context, out)
        return
    if not (isinstance(tp, type) and issubclass(tp, Section) and isinstance(data, dict)):
        return
    if not any(e[: len(loc)] == loc for e in error_locs):
        _problems_of(tp.model_validate(data, context=context), loc, out)
        return
    for name, field in tp.model_fields.items():
        if name in data:
            _collect_problems(field.annotation, data[name], (*loc, name), error_locs, context, out)


def _problems_of(section: Section, loc: _Where, out: list[tuple[_Where, _Where, str]]) -> None:
    for name in type(section).model_fields:
        value = getattr(section, name)
        parts = value if isinstance(value, tuple) else (value,)
        for i, part in enumerate(parts):
            if isinstance(part, Section):
                where = (*loc, name, i) if isinstance(value, tuple) else (*loc, name)
                _problems_of(part, where, out)
    out.extend((loc, (*loc, *where), message) for where, message in section.problems())


def _messages(
    errors: Sequence[Any],
    problems: Sequence[tuple[_Where, _Where, str]],
    source: str,
    origins: Mapping[str, str],
) -> list[str]:
    found: list[tuple[list[int], int, str]] = []
    for error in errors:
        loc: _Where = tuple(error["loc"])
        key, model, field = _walk(loc)
        found.append((key, 0, _line(source, origins, loc, _message(error, loc, model, field))))
    for order, (owner, where, message) in enumerate(problems):
        # A section's problems come after the errors of its own keys, its parts' first.
        key, _, _ = _walk(owner)
        found.append(([*key, _PROBLEMS_LAST], order, _line(source, origins, where, message)))
    found.sort(key=lambda item: (item[0], item[1]))
    return [line for _, _, line in found]


def _line(source: str, origins: Mapping[str, str], where: _Where, message: str) -> str:
    variable = origins.get(_dotted(where))
    if variable is not None:
        return f"${variable} (overrides {_describe_key(where)}): {message}"
    key = _describe_key(where)
    return f"{source}: {key}: {message}" if key else f"{source}: {message}"


def _message(
    error: Any, loc: _Where, model: type[BaseModel] | None, field: FieldInfo | None
) -> str:
    kind: str = error["type"]
    value = error.get("input")
    ctx = error.get("ctx") or {}
    if kind == "extra_forbidden":
        known = list(model.model_fields) if model is not None else []
        return _unknown(str(loc[-1]), known, section=len(loc) == 1)
    if kind == "missing":
        return "missing (required)"
    if kind in _EXPECTED:
        return f"expected {_EXPECTED[kind]}, got {_describe_value(value)}"
    if kind == "literal_error":
        choices = ", ".join(json.dumps(c) for c in re.findall(r"'([^']*)'", ctx["expected"]))
        return f"expected one of {choices}, got {_describe_value(value)}"
    if kind == "finite_number":
        return f"{value} is not a finite number"
    if kind in ("greater_than", "greater_than_equal", "less_than_equal", "less_than"):
        return _bound_message(kind, value, ctx, field)
    if kind == "value_error":
        return str(ctx.get("error", error["msg"]))
    return str(error["msg"])


def _bound_message(
    kind: str, value: object, ctx: Mapping[str, Any], field: FieldInfo | None
) -> str:
    bounds = {**ctx, **field_bounds(field)}  # the field's own numbers: 0, not 0.0
    if (
        field is not None
        and plain_type(field.annotation) is float
        and isinstance(value, int | float)
    ):
        value = float(value)
    shown = toml_value(value)
    if "ge" in bounds and "le" in bounds:
        return f"{shown} is outside the range {bounds['ge']}-{bounds['le']}"
    if kind == "greater_than":
        return f"must be greater than {bounds['gt']}, got {shown}"
    if kind == "greater_than_equal":
        return f"must be at least {bounds['ge']}, got {shown}"
    if kind == "less_than":
        return f"must be less than {bounds['lt']}, got {shown}"
    return f"must be at most {bounds['le']}, got {shown}"


def field_bounds(field: FieldInfo | None) -> dict[str, Any]:
    """The numeric bounds of a field: ``{"gt": 0, "le": 1}``."""
    found: dict[str, Any] = {}
    for item in field.metadata if field is not None else ():
        for name in ("gt", "ge", "lt", "le"):
            bound = getattr(item, name, None)
            if bound is not None:
                found[name] = bound
    return found


def plain_type(tp: Any) -> Any:
    """``X`` from ``X | None`` and ``Annotated[X, ...]``."""
    while True:
        origin = typing.get_origin(tp)
        if origin is Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (typing.Union, types.UnionType):
            inner = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(inner) != 1:
                return tp
            tp = inner[0]
        else:
            return tp


def _walk(loc: _Where) -> tuple[list[int], type[BaseModel] | None, FieldInfo | None]:
    """Follow ``loc`` through the models: a sort key (schema order), the last model, the field."""
    tp: Any = Config
    key: list[int] = []
    model: type[BaseModel] | None = None
    field: FieldInfo | None = None
    for part in loc:
        tp = plain_type(tp)
        origin = typing.get_origin(tp)
        if origin is tuple:
            tp = typing.get_args(tp)[0]
            key.append(part if isinstance(part, int) else 0)
            field = None
        elif origin is dict:
            tp = typing.get_args(tp)[1]
            key.append(0)
        elif isinstance(tp, type) and issubclass(tp, BaseModel):
            model = tp
            names = list(tp.model_fields)
            if part in tp.model_fields:
                key.append(names.index(str(part)))
                field = tp.model_fields[str(part)]
                tp = field.annotation
            else:
                key.append(-1)  # unknown keys first, as they stand in the file
                field, tp = None, None
        else:
            key.append(0)
            field, tp = None, None
    return key, model, field


def _unknown(key: str, known: list[str], *, section: bool) -> str:
    what = "unknown section" if section else "unknown key"
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6) or [
        k
        for k in known
        if len(k) > 2 and key.startswith(k)  # "certificate" -> "cert"
    ]
    return f"{what} (did you mean {close[0]!r}?)" if close else what


def _dotted(where: _Where) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in where).lstrip(".")


def _describe_key(where: _Where) -> str:
    """``[mqtt] port`` for plain section keys, ``board.sensors[2].address`` inside arrays."""
    if not where:
        return ""
    if any(isinstance(p, int) for p in where):
        return _dotted(where)
    if len(where) == 1:
        return f"[{where[0]}]"
    return f"[{_dotted(where[:-1])}] {where[-1]}"


def _describe_value(value: object) -> str:
    kind = {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "an array",
        dict: "a table",
    }.get(type(value), f"a {type(value).__name__}")
    if isinstance(value, dict | list):
        return kind
    shown = toml_value(value) if isinstance(value, bool | int | float | str) else str(value)
    return f"{shown} ({kind})"


def toml_value(value: object, *, hex_int: bool = False) -> str:
    """``value`` written as TOML (also used by the example and the reference)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value:#04x}" if hex_int else str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str | Path):
        return json.dumps(str(value), ensure_ascii=False)
    if isinstance(value, Mapping):
        inner = ", ".join(f"{toml_value(str(k))} = {toml_value(v)}" for k, v in value.items())
        return "{ " + inner + " }" if inner else "{}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML form for {value!r}")
