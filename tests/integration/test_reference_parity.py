"""Served outputs equal the in-process reference pipeline (same artifacts, same preprocess code)."""
from __future__ import annotations

import numpy as np
import pytest

from dermassist.reference import ReferencePipeline
from preprocess.contract import CAM, ENSEMBLE_OUTPUTS, NOTE
from tests.conftest import HAM_IMAGES
from tests.support.images import encode, synthetic_lesion
from tests.support.triton import infer

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def reference(tiny_repository) -> ReferencePipeline:
    return ReferencePipeline(tiny_repository)


def test_served_equals_reference_within_1e_4(triton_server, reference: ReferencePipeline, isic2017_jpeg: bytes) -> None:
    blobs = [p.read_bytes() for p in sorted(HAM_IMAGES.glob("*.jpg"))[:3]]
    blobs += [isic2017_jpeg, encode(synthetic_lesion(1800, 2400, seed=7), ".jpg"), encode(synthetic_lesion(64, 80), ".png")]
    for blob in blobs:
        served = infer(triton_server.config.grpc_address, [blob])
        local = reference.run([blob])
        assert set(served) == {o.name for o in ENSEMBLE_OUTPUTS} <= set(local)
        for output in ENSEMBLE_OUTPUTS:  # every public output, the triage decision, CROP and CAM among them
            mine, theirs = served[output.name].reshape(local[output.name].shape), local[output.name]
            if output is NOTE:
                assert [_text(v) for v in mine.ravel()] == [_text(v) for v in np.asarray(theirs).ravel()]
            elif output.dtype == "TYPE_FP32":
                np.testing.assert_allclose(mine, theirs, atol=1e-4, rtol=0, err_msg=output.name)
            elif output is CAM:  # a map of float activations rounded to 0..255: one level either way
                assert np.abs(mine.astype(np.int16) - theirs.astype(np.int16)).max() <= 1
            else:
                np.testing.assert_array_equal(mine, theirs, err_msg=output.name)


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
