"""Parity check shared by the exports: exported and eager outputs must agree."""
from __future__ import annotations

import numpy as np

from ..errors import ExportError

PARITY_ATOL = 1e-5


def check_parity(what: str, eager: np.ndarray, exported: np.ndarray, atol: float = PARITY_ATOL) -> float:
    """Return the max absolute difference, raising ExportError when shapes differ or it exceeds atol."""
    eager, exported = np.asarray(eager), np.asarray(exported)
    if eager.shape != exported.shape:
        raise ExportError(f"{what}: exported output shape {exported.shape} differs from eager {eager.shape}")
    if not np.all(np.isfinite(eager)):
        raise ExportError(f"{what}: the model's own (eager) output holds NaN or infinite values, so its weights do; "
                          "expected finite weights: train again or take an earlier checkpoint; not written")
    diff = float(np.max(np.abs(eager.astype(np.float64) - exported.astype(np.float64))))
    if not diff <= atol:
        raise ExportError(f"{what}: exported output differs from eager by {diff:.3g} (> {atol:g}); not written")
    return diff
