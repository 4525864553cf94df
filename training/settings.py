"""Resolve a setting from the command line, then the environment, then the default (CLI > env > default)."""
from __future__ import annotations

import os
from collections.abc import Callable
from typing import TypeVar

from .errors import TrainingConfigError

T = TypeVar("T")
ENV_PREFIX = "DERMASSIST_"


def setting(cli_value: T | None, env_name: str, default: T, cast: Callable[[str], T]) -> T:
    """The CLI value when given, else ``DERMASSIST_<env_name>`` parsed with ``cast``, else the default."""
    if cli_value is not None:
        return cli_value
    raw = os.environ.get(ENV_PREFIX + env_name)
    if raw is None or raw == "":
        return default
    try:
        return cast(raw)
    except ValueError as e:
        raise TrainingConfigError(
            f"environment variable {ENV_PREFIX}{env_name}={raw!r} is invalid ({e}); expected a {cast.__name__}: "
            "fix or unset it"
        ) from e
