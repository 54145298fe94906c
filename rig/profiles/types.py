"""Validated field types shared by the profiles: durations, time zones, bind addresses and secrets.

Each type is checked where a profile declares it, so a bad value is refused with its field's path when the
profile loads, never later in the middle of a run. (Every float of every profile is finite: `StrictModel`
refuses inf and NaN.)
"""

from __future__ import annotations

import ipaddress
import os
import re
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BeforeValidator, Field, SecretStr, ValidationInfo
from pydantic_core import PydanticCustomError

SECONDS_MAX = 10 * 365 * 86400.0
"""The longest duration a profile may give (ten years): longer is a typo, and would overflow the clock's dates."""

Seconds = Annotated[float, Field(ge=0, le=SECONDS_MAX)]
"""A wait or duration: zero or more seconds, at most ten years (finite, as every profile float)."""

PositiveSeconds = Annotated[float, Field(gt=0, le=SECONDS_MAX)]
"""A duration or timeout that cannot be zero."""

SECRET_ERROR = "secret"
"""The validation error type of a bad secret: its message never shows the value given."""

UNSET_SECRET = "<unset environment variable {name}>"
"""What a secret read from a missing environment variable holds when secrets are not needed (a report rebuild)."""

_ENVIRONMENT_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ZONE_NAME_MAX = 64


def _known_zone(value: str) -> str:
    if len(value) > _ZONE_NAME_MAX:
        raise ValueError(f"unknown time zone: {len(value)} characters, longer than any IANA name")
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(f"unknown time zone {value!r} (expected an IANA name such as Asia/Shanghai)") from None
    return value


TimeZone = Annotated[str, AfterValidator(_known_zone)]
"""An IANA time zone name this machine's zoneinfo knows (Asia/Shanghai, UTC, ...)."""


def is_loopback(host: str) -> bool:
    """True for an address only this machine reaches: 127.0.0.0/8, ::1, or `localhost`."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _secret_error(message: str) -> PydanticCustomError:
    return PydanticCustomError(SECRET_ERROR, message)


def _from_environment(reference: dict, info: ValidationInfo) -> str:
    name = reference.get("env")
    if set(reference) != {"env"} or not isinstance(name, str) or not _ENVIRONMENT_NAME.match(name):
        raise _secret_error("expected the secret as text, or {env: VARIABLE_NAME} to read it from the environment")
    value = os.environ.get(name)
    if value:
        return value
    if info.context and info.context.get("secrets_optional"):
        return UNSET_SECRET.format(name=name)
    state = "is empty" if value == "" else "is not set"
    raise _secret_error(f"environment variable {name} {state} (the profile reads this secret from it)")


def _secret_value(value: object, info: ValidationInfo) -> object:
    if isinstance(value, SecretStr):
        return value
    if isinstance(value, dict):
        return _from_environment(value, info)
    if isinstance(value, str):
        if not value:
            raise _secret_error("a secret cannot be empty")
        return value
    raise _secret_error("expected the secret as quoted text, or {env: VARIABLE_NAME} to read it from the environment")


Secret = Annotated[SecretStr, BeforeValidator(_secret_value)]
"""A password or key: quoted text, or `{env: NAME}` read from the environment variable NAME when the profile loads.
Masked in every repr, dump and log; a bad value's error never repeats it."""
