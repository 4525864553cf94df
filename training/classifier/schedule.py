"""The progressive-resizing schedule rule, importable without torch (the pipeline and CLI use it)."""
from __future__ import annotations

DEFAULT_LOW_RES_EPOCHS = 4


def low_res_epochs_for(epochs: int, wanted: int = DEFAULT_LOW_RES_EPOCHS) -> int:
    """Low-resolution epochs of a schedule: ``wanted``, leaving at least one epoch at full size."""
    return max(0, min(wanted, epochs - 1))
