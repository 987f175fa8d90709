"""What every configuration section is made of: a strict, frozen pydantic model, documented fields.

Each component defines its own section beside its code (``MqttSettings`` in :mod:`agent.mqtt`,
``AlarmsConfig`` in :mod:`agent.alarms`, ...) from :class:`Section` and :func:`setting`, and gets
it passed in as it is; :mod:`agent.config` only assembles the root, loads the TOML file and turns
validation errors into one line each.

The loader is strict on purpose: a board runs unattended for years, and a typo that silently
falls back to a default (``prot = 8883``) is found months later. Unknown keys, wrong types and
impossible values are errors. Cross-field rules live in each section's ``problems`` method. A
section built in code reports all of them together as one validation error; the loader asks
every valid section of the file for them instead, so that they come out one line each, with
their keys, together with every other error.

Extra field information understood by the example and reference generators
(``json_schema_extra``): ``auto`` (text describing a default computed at load time), ``example``
(a value shown commented out for fields unset by default), ``hex`` (show integers in
hexadecimal), ``secret`` (a path to a secret: ``credential:NAME`` reads
``$CREDENTIALS_DIRECTORY/NAME``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, TypeAlias

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)
from pydantic import ValidationInfo as _ValidationInfo
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError

Problem: TypeAlias = tuple[tuple[str | int, ...], str]
"""A cross-field finding of a section: the key path relative to the section, and the message."""

CREDENTIAL_PREFIX = "credential:"
_TOPIC_SAFE = re.compile(r"[A-Za-z0-9_-]+")


class Section(BaseModel):
    """A configuration section: unknown keys refused, types strict, values frozen.

    Subclasses may define ``problems`` (cross-field rules), which are checked after the fields.
    """

    model_config = ConfigDict(
        extra="forbid", frozen=True, strict=True, allow_inf_nan=False, validate_default=False
    )

    def problems(self) -> Iterator[Problem]:
        """Cross-field rules of this section (none by default)."""
        return iter(())

    @model_validator(mode="after")
    def _cross_field_rules(self, info: _ValidationInfo) -> Section:
        if _context(info).get("defer_problems"):
            return self  # the loader collects them from the whole tree, with their keys
        found = tuple(self.problems())
        if found:
            summary = "; ".join(
                f"{'.'.join(str(p) for p in where)}: {message}" for where, message in found
            )
            raise PydanticCustomError(
                "problems", "{summary}", {"summary": summary, "problems": found}
            )
        return self


def setting(
    default: Any = ...,
    description: str = "",
    *,
    default_factory: Any = None,
    auto: str | None = None,
    example: Any = None,
    hex: bool = False,
    secret: bool = False,
    strict: bool | None = None,
    repr: bool = True,
    gt: float | None = None,
    ge: float | None = None,
    le: float | None = None,
) -> Any:
    """A documented field (every field must say what it is for)."""
    extra = {
        key: value
        for key, value in (("auto", auto), ("example", example), ("hex", hex), ("secret", secret))
        if value not in (None, False)
    }
    default_kw: dict[str, Any] = (
        {"default_factory": default_factory}
        if default_factory is not None
        else {"default": default}
    )
    return Field(
        **default_kw,
        description=description,
        json_schema_extra=extra or None,
        strict=strict,
        repr=repr,
        gt=gt,
        ge=ge,
        le=le,
    )


def _topic_safe(value: str) -> str:
    if not _TOPIC_SAFE.fullmatch(value):
        raise PydanticCustomError(
            "topic_safe", f"{value!r} is not topic-safe: use only letters, digits, '_' and '-'"
        )
    return value


TopicLevel = Annotated[str, AfterValidator(_topic_safe)]
"""A string used as one MQTT topic level: ``[A-Za-z0-9_-]+``."""


def is_topic_level(field: FieldInfo) -> bool:
    """Whether a field is a :data:`TopicLevel` (for the documentation)."""
    return any(getattr(item, "func", None) is _topic_safe for item in field.metadata)


def _context(info: _ValidationInfo) -> dict[str, Any]:
    return info.context if isinstance(info.context, dict) else {}


def _path(value: object, info: _ValidationInfo) -> Path:
    """Relative paths are relative to the config file's directory (when loading a file)."""
    if isinstance(value, Path):
        return value
    if not isinstance(value, str) or not value:
        raise PydanticCustomError("path_type", "expected a path (a non-empty string)")
    base = _context(info).get("base_dir")
    path = Path(value)
    return path if path.is_absolute() or base is None else Path(base) / path


def _secret(value: object, info: _ValidationInfo) -> Path:
    """``credential:NAME`` is ``$CREDENTIALS_DIRECTORY/NAME``; a loaded secret file must exist."""
    context = _context(info)
    if isinstance(value, str) and value.startswith(CREDENTIAL_PREFIX):
        name = value[len(CREDENTIAL_PREFIX) :]
        if not name or "/" in name:
            raise PydanticCustomError(
                "secret", f"{value!r}: a credential name is one file name, e.g. credential:key"
            )
        directory = context.get("env", {}).get("CREDENTIALS_DIRECTORY", "")
        if not directory:
            raise PydanticCustomError(
                "secret",
                f"{value} needs $CREDENTIALS_DIRECTORY, which is not set "
                "(systemd sets it for a unit with LoadCredential=)",
            )
        path = Path(directory) / name
        if not path.is_file():
            raise PydanticCustomError(
                "secret",
                f"{value}: credential file {path} does not exist "
                f"(is LoadCredential={name}:... in the unit?)",
            )
        return path
    path = _path(value, info)
    if context and not path.is_file():
        raise PydanticCustomError("secret", f"no such file: {path}")
    return path


ConfigPath = Annotated[Path, BeforeValidator(_path)]
"""A file or directory; relative to the config file."""

SecretPath = Annotated[Path, BeforeValidator(_secret)]
"""A file holding a secret (certificate, key, password): ``credential:NAME`` or a path."""


def one_line(exc: ValidationError) -> str:
    """A validation error of settings built in code, as one line (``key: message; ...``)."""
    return "; ".join(
        f"{'.'.join(str(p) for p in error['loc']) or 'settings'}: {error['msg']}"
        for error in exc.errors()
    )


def topic_prefix_problem(value: str) -> str | None:
    """Why ``value`` cannot start a topic, or None."""
    levels = value.split("/")
    if not value or any(not level for level in levels):
        return f"{value!r} is not a topic prefix: no empty level, no leading or trailing '/'"
    if any(c in value for c in "+#\x00"):
        return f"{value!r} must not contain the wildcards '+' or '#'"
    return None
