"""The model calls a served step and the in-process reference pipeline share, written once: a prepared batch's bad
rows refused together, the segmenter's SavedModel signature and the classifier's TorchScript on CPU. The adapters keep
only Triton's input and output; ``dermassist.reference`` calls the same functions, so its parity with the served
answers rests on one piece of code."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import numpy as np

from preprocess.contract import BAD_ROW_FORMAT, SAVEDMODEL_OUTPUT
from preprocess.errors import InvalidImageError
from preprocess.prepare import PreparedImage

from .errors import RepositoryError
from .frameworks import SAVEDMODEL_SIGNATURE, load_savedmodel, load_torchscript


def refuse_bad_rows(prepared: Sequence[PreparedImage | InvalidImageError],
                    error: type[Exception] = InvalidImageError) -> list[PreparedImage]:
    """The prepared images of one request, or ``error`` naming every bad row with its reason (one bad image refuses
    its whole request, and the others' reasons are not lost)."""
    bad = [(i, r) for i, r in enumerate(prepared) if isinstance(r, InvalidImageError)]
    if bad:
        raise error("; ".join(f"{BAD_ROW_FORMAT.format(row=i)}{e}" for i, e in bad))
    return list(prepared)  # type: ignore[arg-type]


class SavedModelStep:
    """The segmenter's SavedModel called as the served step calls it: its serving signature on the one input, the
    contract's output as float32."""

    def __init__(self, tf: ModuleType, path: str | Path, error: type[Exception] = RepositoryError) -> None:
        self._tf = tf
        self._model = load_savedmodel(tf, path, error)  # the signature needs its object alive
        self._fn = self._model.signatures[SAVEDMODEL_SIGNATURE]
        (self._input,) = self._fn.structured_input_signature[1].keys()

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """SEG_PROB for a SEG_INPUT batch."""
        out = self._fn(**{self._input: self._tf.constant(x)})[SAVEDMODEL_OUTPUT]
        return np.asarray(out.numpy(), dtype=np.float32)


class TorchScriptStep:
    """The classifier's TorchScript on CPU as the served step runs it: frozen and optimised for inference when the
    version says so, called without autograd, its three outputs as numpy."""

    def __init__(self, torch: ModuleType, path: str | Path, optimize_for_cpu: bool,
                 error: type[Exception] = RepositoryError) -> None:
        self._torch = torch
        self.module = load_torchscript(torch, path, "cpu", error)  # as loaded: its submodules and methods kept
        self._model = (torch.jit.optimize_for_inference(torch.jit.freeze(self.module)) if optimize_for_cpu
                       else self.module)

    def __call__(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(PROBABILITIES, OOD_SCORE, CAM) for a CLS_INPUT batch."""
        with self._torch.inference_mode():
            probs, ood, cam = self._model(self._torch.from_numpy(np.ascontiguousarray(x)))
        return probs.numpy(), ood.numpy(), cam.numpy()
