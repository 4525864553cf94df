"""Triton adapter for ``triage``: CLS_PROBABILITIES, CLS_OOD_SCORE, QUALITY, CROP_LESION_FRACTION,
OTHER_LESION_FRACTION -> REFER, REFER_SCORE, ASSESSABLE, NOTE, OOD_SCORE (the classifier's over the limit in force),
and the public PROBABILITIES and LESION_FRACTION passed on."""
import json
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

from preprocess.batching import batch_execute, input_rows, triton_responses
from preprocess.contract import (
    ASSESSABLE,
    CLS_OOD_SCORE,
    CLS_PROBABILITIES,
    CROP_LESION_FRACTION,
    LESION_FRACTION,
    NOTE,
    OOD_SCORE,
    OTHER_LESION_FRACTION,
    PROBABILITIES,
    QUALITY,
    REFER,
    REFER_SCORE,
    TRIAGE_MODEL,
)
from preprocess.params import step_params
from preprocess.triage import TriageParams, triage_batch

INPUTS = {"probabilities": CLS_PROBABILITIES, "ood_score": CLS_OOD_SCORE, "quality": QUALITY,
          "lesion_fraction": CROP_LESION_FRACTION, "other_lesion_fraction": OTHER_LESION_FRACTION}


class TritonPythonModel:
    """Apply the release's operating point and limits to every row of every request in one call."""

    def initialize(self, args: dict[str, str]) -> None:
        """Read the operating point and limits once: config parameter > the version's tuned.json > default."""
        self.params = step_params(TriageParams, args, json.loads(args["model_config"]))

    def execute(self, requests: list[Any]) -> list[Any]:
        """Triage every row of every request in one call; a malformed request gets its own INVALID_ARGUMENT."""
        parsed = [input_rows(r, pb_utils, INPUTS) for r in requests]
        return triton_responses(batch_execute(parsed, self._compute), pb_utils, TRIAGE_MODEL)

    def _compute(self, probabilities: np.ndarray, ood_score: np.ndarray, quality: np.ndarray, lesion_fraction: np.ndarray,
                 other_lesion_fraction: np.ndarray) -> dict[str, Any]:
        out = triage_batch(probabilities, ood_score, quality, lesion_fraction, other_lesion_fraction, self.params)
        return {REFER.name: out.refer, REFER_SCORE.name: out.refer_score, ASSESSABLE.name: out.assessable,
                NOTE.name: out.note, PROBABILITIES.name: probabilities, OOD_SCORE.name: out.ood_score,
                LESION_FRACTION.name: lesion_fraction}
