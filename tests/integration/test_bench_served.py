"""The reference pipeline against the served ensemble, and the benchmark's measurement paths, on real Triton."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dermassist.bench.config import BenchConfig
from dermassist.bench.perf_analyzer import ensure_perf_analyzer, run_perf_analyzer
from dermassist.bench.runner import run_bench
from dermassist.bench.served import measure_level
from dermassist.reference import ReferenceArtifactsMissing, ReferenceInputError, ReferencePipeline, ReferencePipelineError
from preprocess.contract import CLS_SIZE, STEP_MODELS
from tests.support.triton import infer

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def images(shared_data: Path) -> list[bytes]:
    folder = shared_data / "ham10000_sample" / "HAM10000_images_part_1"
    return [p.read_bytes() for p in sorted(folder.glob("*.jpg"))[:3]]


def test_reference_matches_served_ensemble(triton_server, tiny_repository: Path, images: list[bytes]):
    reference = ReferencePipeline(tiny_repository).run(images)
    served = infer(triton_server.config.grpc_address, images, outputs=list(reference))
    for name, expected in reference.items():
        got = served[name]
        assert got.shape == expected.shape and got.dtype == expected.dtype, name
        if expected.dtype == object:  # the NOTE strings must match word for word
            assert got.tolist() == expected.tolist(), name
            continue
        limit = 1.0 if name == "CAM" else 1e-4  # the 0..255 map rounds floats: one grey level, as in the export parity
        assert np.max(np.abs(got.astype(np.float64) - expected.astype(np.float64))) <= limit, name


def test_reference_rejects_bad_inputs_and_missing_models(tiny_repository: Path, tmp_path: Path, images):
    with pytest.raises(ReferenceInputError, match="IMAGE row 1"):
        ReferencePipeline(tiny_repository).run([images[0], b"not an image"])
    with pytest.raises(ReferenceArtifactsMissing, match="dermassist models --repository"):
        ReferencePipeline(tmp_path)


def test_served_level_counts_every_step_in_triton_statistics(triton_server, images):
    level = measure_level(triton_server.config.grpc_address, images, concurrency=2, requests=4,
                          admin_headers=triton_server.config.grpc_admin_headers, server_pid=triton_server.pid)
    assert level.latency.images == 4 and level.latency.images_per_s > 0
    for model in STEP_MODELS:
        assert level.models[model].inference_count == 4, model
        assert level.models[model].compute_ms_per_image > 0, model
    # CPU per image, read from /proc: the server and every step's stub found (a stub's few ms may round to 0 ticks)
    assert set(level.cpu_ms) == {"tritonserver", *STEP_MODELS, "total"}
    assert level.cpu_ms["total"] > 0 and all(v >= 0 for v in level.cpu_ms.values())


def test_perf_analyzer_measures_the_ensemble(triton_server, images, tmp_path: Path):
    install = ensure_perf_analyzer(BenchConfig().tools_dir)
    (row,) = run_perf_analyzer(install, triton_server.config.grpc_address, images, tmp_path, [1], window_ms=1500,
                               headers=triton_server.config.grpc_admin_headers)
    assert row.concurrency == 1 and row.throughput > 0 and row.p50_ms > 0


def test_run_bench_writes_reports(tiny_repository: Path, tmp_path: Path):
    config = BenchConfig(repository=tiny_repository, concurrencies=(1, 2), requests_per_level=4, inprocess_passes=1,
                         warmup=1, per_size=1, report_dir=tmp_path, perf_analyzer=False)
    result = run_bench(config)
    md, js = result.write(tmp_path)
    text = md.read_text()
    assert "| in-process (batch 1, sequential) | 1 |" in text and "| served gRPC (ours) | 2 |" in text
    names = [t.name for t in result.targets()]
    assert len(names) == 4 and not any("c=4" in n for n in names)  # no c=4 level: throughput target not evaluated
    assert "triage outputs' cost / served p50 at c=1" in names
    assert all(level.cpu_ms.get("total", 0) > 0 for level in result.served) and "## CPU per image" in text
    assert result.inprocess.latency.images == 4
    assert [row.concurrency for row in result.front.levels] == [level.concurrency for level in result.served]
    assert all(row.direct_p50_ms > 0 and row.front_p50_ms > 0 for row in result.front.rows) and "through the front" in text
    assert (tmp_path / "front_audit.jsonl").read_text().count("\n") == result.front.requests
    decode_ms, share = result.decode_floor()
    assert 0 < decode_ms < result.inprocess.latency.p50_ms  # one part of the pipeline, far from all of it
    assert 0 < share < 1 and f"takes {decode_ms:.2f} ms per image" in text


def test_triage_extras_measure_the_classifiers_ood_and_cam(tiny_repository: Path, images: list[bytes]):
    """The extras are timed against the classifier's own layers (same probabilities) without OOD and CAM.

    On the tiny test model the OOD score and CAM cost is within timing noise, so the test asserts what the
    measurement stands on (`probabilities` is the served classifier less the extras), not a timing.
    """
    import torch

    reference = ReferencePipeline(tiny_repository)
    with torch.no_grad():
        reference._classify.module.temperature.fill_(0.7)  # a release's temperature, not the tiny model's 1
    x = torch.from_numpy(np.random.default_rng(0).random((2, 3, CLS_SIZE, CLS_SIZE), dtype=np.float32))
    with torch.inference_mode():
        probs, _ood, _cam = reference._classify.module(x)
        bare = reference.classifier_without_extras()(x)
    assert not isinstance(bare, tuple) and bare.shape == probs.shape
    np.testing.assert_allclose(bare.numpy(), probs.numpy(), atol=1e-5)
    extras = reference.triage_extras_ms(images, passes=3)
    assert extras["quality"] > 0 and np.isfinite(extras["classifier_extras"]) and extras["classifier_extras"] >= 0


def test_an_export_without_the_probabilities_method_is_refused_naming_the_fix(tiny_repository: Path):
    """A classifier exported before ``probabilities`` existed cannot be priced: the bench is told to export again."""
    import torch

    reference = ReferencePipeline(tiny_repository)
    reference._classify.module = torch.jit.script(torch.nn.Identity())
    with pytest.raises(ReferencePipelineError, match=r"`probabilities` method.*dermassist models"):
        reference.classifier_without_extras()


def test_the_reference_runs_the_classifier_with_the_served_threads(tiny_repository: Path):
    """The same intra-op thread count as the served step, so the same sums and the same bits on any machine (on
    torch's default, all cores, they matched only on a 2-core machine: performance audit 8)."""
    from dermassist.reference import classifier_settings

    expected = classifier_settings(tiny_repository).intra_op_threads
    assert expected > 0 and ReferencePipeline(tiny_repository).torch_threads == expected
