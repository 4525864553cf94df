"""Resolve a setting from the command line, then the environment, then the default (CLI > env > default)."""
from __future__ import annotations

import os
from typing import TypeVar

from dermassist.settings import cast_env

from .errors import TrainingConfigError

T = TypeVar("T", int, float, bool)
ENV_PREFIX = "DERMASSIST_"


def setting(cli_value: T | None, env_name: str, default: T, cast: type[T]) -> T:
    """The CLI value when given, else ``DERMASSIST_<env_name>`` parsed as ``cast`` (int, float or bool), else the default."""
    if cli_value is not None:
        return cli_value
    raw = os.environ.get(ENV_PREFIX + env_name)
    if raw is None or raw == "":
        return default
    return cast_env(ENV_PREFIX + env_name, raw, cast.__name__, TrainingConfigError)
