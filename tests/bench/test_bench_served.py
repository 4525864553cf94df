"""The reference pipeline against the served ensemble, and the benchmark's measurement paths, on real Triton."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dermassist.bench.config import BenchConfig
from dermassist.bench.perf_analyzer import ensure_perf_analyzer, run_perf_analyzer
from dermassist.bench.runner import run_bench
from dermassist.bench.served import measure_level
from dermassist.reference import ReferenceArtifactsMissing, ReferenceInputError, ReferencePipeline
from preprocess.contract import STEP_MODELS

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def images(shared_data: Path) -> list[bytes]:
    folder = shared_data / "ham10000_sample" / "HAM10000_images_part_1"
    return [p.read_bytes() for p in sorted(folder.glob("*.jpg"))[:3]]


def test_reference_matches_served_ensemble(triton_server, tiny_repository: Path, images: list[bytes]):
    import tritonclient.grpc as grpcclient

    reference = ReferencePipeline(tiny_repository).run(images)
    client = grpcclient.InferenceServerClient(triton_server.config.grpc_address)
    tensor = grpcclient.InferInput("IMAGE", [len(images), 1], "BYTES")
    tensor.set_data_from_numpy(np.array(images, dtype=object).reshape(-1, 1))
    served = client.infer("dermassist", [tensor], outputs=[grpcclient.InferRequestedOutput(k) for k in reference])
    for name, expected in reference.items():
        got = served.as_numpy(name)
        assert got.shape == expected.shape and got.dtype == expected.dtype, name
        assert np.max(np.abs(got.astype(np.float64) - expected.astype(np.float64))) <= 1e-4, name


def test_reference_rejects_bad_inputs_and_missing_models(tiny_repository: Path, tmp_path: Path, images):
    with pytest.raises(ReferenceInputError, match="IMAGE row 1"):
        ReferencePipeline(tiny_repository).run([images[0], b"not an image"])
    with pytest.raises(ReferenceArtifactsMissing, match="make models"):
        ReferencePipeline(tmp_path)


def test_served_level_counts_every_step_in_triton_statistics(triton_server, images):
    level = measure_level(triton_server.config.grpc_address, images, concurrency=2, requests=4)
    assert level.latency.images == 4 and level.latency.images_per_s > 0
    for model in STEP_MODELS:
        assert level.models[model].inference_count == 4, model
        assert level.models[model].compute_ms_per_image > 0, model


def test_perf_analyzer_measures_the_ensemble(triton_server, images, tmp_path: Path):
    install = ensure_perf_analyzer(BenchConfig().tools_dir)
    (row,) = run_perf_analyzer(install, triton_server.config.grpc_address, images, tmp_path, [1], window_ms=1500)
    assert row.concurrency == 1 and row.throughput > 0 and row.p50_ms > 0


def test_run_bench_writes_reports(tiny_repository: Path, tmp_path: Path):
    config = BenchConfig(repository=tiny_repository, concurrencies=(1, 2), requests_per_level=4, inprocess_passes=1,
                         warmup=1, per_size=1, report_dir=tmp_path, perf_analyzer=False)
    result = run_bench(config)
    md, js = result.write(tmp_path)
    text = md.read_text()
    assert "| in-process (batch 1, sequential) | 1 |" in text and "| served gRPC (ours) | 2 |" in text
    assert len(result.targets()) == 3  # no c=4 level: throughput target not evaluated
    assert result.inprocess.latency.images == 4
    decode_ms, share = result.decode_floor()
    assert 0 < decode_ms < result.inprocess.latency.p50_ms  # one part of the pipeline, far from all of it
    assert 0 < share < 1 and f"takes {decode_ms:.2f} ms per image" in text
