"""Served outputs equal the in-process reference pipeline (same artifacts, same preprocess code)."""
from __future__ import annotations

import numpy as np
import pytest

from dermassist.reference import ReferencePipeline
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
        np.testing.assert_allclose(served["PROBABILITIES"], local["PROBABILITIES"], atol=1e-4, rtol=0)
        np.testing.assert_allclose(served["LESION_FRACTION"], local["LESION_FRACTION"], atol=1e-4, rtol=0)
        np.testing.assert_array_equal(served["BBOX"], local["BBOX"])
        np.testing.assert_array_equal(served["MASK"], local["MASK"])
