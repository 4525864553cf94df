"""Resolve typed settings dataclasses: CLI overrides, then environment variables, then defaults."""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import fields
from typing import Any

from .errors import ConfigError

_TRUE, _FALSE = ("1", "true", "yes"), ("0", "false", "no")


def cast_env(name: str, raw: str, kind: str, error: type[Exception] = ConfigError) -> Any:
    """Parse one environment value for a field annotated ``kind`` (int, float, bool, tuple[int, ...])."""
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind == "bool":
            if raw.lower() not in _TRUE + _FALSE:
                raise ValueError(raw)
            return raw.lower() in _TRUE
        if kind.startswith("tuple"):
            return tuple(int(v) for v in raw.replace(" ", "").split(",") if v)
    except ValueError as e:
        raise error(f"environment variable {name} must be a {kind}, got {raw!r}") from e
    return raw


def resolve_values(
    cls: type,
    prefix: str,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    error: type[Exception] = ConfigError,
) -> dict[str, Any]:
    """Field values for ``cls``: a non-None override wins, then ``PREFIX<FIELD>``, else the default."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for f in fields(cls):
        env_name = prefix + f.name.upper()
        if overrides and overrides.get(f.name) is not None:
            values[f.name] = overrides[f.name]
        elif env_name in environ:
            values[f.name] = cast_env(env_name, environ[env_name], str(f.type), error)
    return values
