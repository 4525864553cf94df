"""Logging of every DermAssist entry point: one format, INFO by default, DEBUG with ``--verbose``."""
from __future__ import annotations

import logging

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(verbose: bool = False, level: int | None = None) -> None:
    """Set up the root logger of a command: ``level`` when given, else DEBUG if ``verbose``, else INFO."""
    if level is None:
        level = logging.DEBUG if verbose else logging.INFO
    logging.basicConfig(level=level, format=LOG_FORMAT)
