"""Unit tests of the benchmark's arithmetic, parsing and configuration (no server)."""
from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from tritonclient.utils import deserialize_bytes_tensor

from dermassist.bench.config import BenchConfig
from dermassist.bench.errors import BenchConfigError, NoMeasurementsError
from dermassist.bench.inprocess import InProcessResult
from dermassist.bench.latency import summarize
from dermassist.bench.perf_analyzer import parse_csv, write_input_data
from dermassist.bench.report import BenchResult
from dermassist.bench.served import ServedLevel
from dermassist.bench.stats import ModelStats, diff, parse_statistics

STEPS = ("prepare", "lesion_segmenter", "lesion_crop", "lesion_classifier")


def _payload(count: int, infer_ns: int) -> dict:
    return {"model_stats": [{
        "name": "lesion_classifier", "version": "1", "inference_count": str(count), "execution_count": str(count // 2),
        "inference_stats": {"success": {"count": str(count), "ns": "1"}, "queue": {"count": str(count), "ns": str(count * 1000)},
                            "compute_input": {"count": "1", "ns": "0"}, "compute_infer": {"count": "1", "ns": str(infer_ns)},
                            "compute_output": {"count": "1", "ns": "0"}},
    }]}


def test_statistics_diff_gives_per_image_compute_and_batch():
    before, after = parse_statistics(_payload(4, 40_000_000)), parse_statistics(_payload(12, 120_000_000))
    d = diff(after, before)["lesion_classifier"]
    assert d.inference_count == 8 and d.execution_count == 4
    assert d.compute_ms_per_image == pytest.approx(10.0)
    assert d.per_image_ms("queue") == pytest.approx(0.001)
    assert d.mean_batch == pytest.approx(2.0)


def test_summarize_percentiles_and_throughput():
    s = summarize([0.010] * 98 + [0.100, 0.200], images=100, wall_s=2.0)
    assert s.images_per_s == 50.0 and s.p50_ms == pytest.approx(10.0) and s.p99_ms > 99.0
    with pytest.raises(NoMeasurementsError, match="got 0 samples in 1.0 s; run at least one image"):
        summarize([], 0, 1.0)


def test_bench_config_precedence_and_validation():
    env = {"DERMASSIST_BENCH_CONCURRENCIES": "1,4", "DERMASSIST_BENCH_PERF_ANALYZER": "false"}
    config = BenchConfig.resolve({"requests_per_level": 5}, env)
    assert config.concurrencies == (1, 4) and config.perf_analyzer is False and config.requests_per_level == 5
    assert BenchConfig.resolve({"concurrencies": (2,)}, env).concurrencies == (2,)
    with pytest.raises(BenchConfigError):
        BenchConfig(concurrencies=(0,))
    with pytest.raises(BenchConfigError, match="DERMASSIST_BENCH_PERF_ANALYZER"):
        BenchConfig.resolve({}, {"DERMASSIST_BENCH_PERF_ANALYZER": "maybe"})


def _level(c: int, ips: float, p50: float, compute: dict[str, float]) -> ServedLevel:
    models = {m: ModelStats(10, 10, {"compute_infer": int(ms * 1e6 * 10), "queue": 0}) for m, ms in compute.items()}
    return ServedLevel(c, summarize([p50 / 1000.0] * 10, int(ips), 1.0), models)


def test_targets_use_throughput_latency_and_step_shares(tmp_path: Path):
    inproc = InProcessResult(summarize([0.050] * 10, 20, 1.0), dict.fromkeys(STEPS, 1.0), 0.5)
    shares = {"prepare": 5.0, "lesion_segmenter": 40.0, "lesion_crop": 15.0, "lesion_classifier": 40.0}
    result = BenchResult("test machine", "test corpus", inproc,
                         [_level(1, 18, 60.0, shares), _level(4, 25, 150.0, shares)])
    assert [t.met for t in result.targets()] == [True, True, True, False]  # shares taken at c=1
    assert result.targets()[0].value == pytest.approx(25 / 20)
    assert result.targets()[1].value == pytest.approx(60.0 / 50.0)
    assert result.targets()[3].value == pytest.approx(0.15)
    md, js = result.write(tmp_path)
    assert "| served gRPC (ours) | 4 | 10 | 25.00 |" in md.read_text()  # 10 samples timed
    assert json.loads(js.read_text())["targets"][3]["met"] is False
    assert result.decode_floor() is None and "Floor under" not in md.read_text()  # decode not measured


def test_decode_floor_is_a_share_of_the_c1_compute(tmp_path: Path):
    inproc = InProcessResult(summarize([0.050] * 10, 20, 1.0), dict.fromkeys(STEPS, 1.0), 0.5, decode_ms=4.0)
    compute = {"prepare": 5.0, "lesion_segmenter": 15.0, "lesion_crop": 5.0, "lesion_classifier": 25.0}
    result = BenchResult("test machine", "test corpus", inproc, [_level(1, 18, 60.0, compute)])
    assert result.decode_floor() == pytest.approx((4.0, 0.08))
    md, js = result.write(tmp_path)
    assert "takes 4.00 ms per image, 8.0% of the c=1 compute" in md.read_text()
    assert json.loads(js.read_text())["decode_floor"]["share_c1"] == pytest.approx(0.08)


def test_perf_analyzer_input_is_one_serialised_bytes_element(tmp_path: Path):
    blobs = [b"\xff\xd8\xffjpeg-one", b"\x89PNG\r\n\x1a\nsecond"]
    data = json.loads(write_input_data(blobs, tmp_path / "in.json").read_text())["data"]
    decoded = [deserialize_bytes_tensor(base64.b64decode(e["IMAGE"]["b64"])) for e in data]
    assert [[bytes(x) for x in d] for d in decoded] == [[b] for b in blobs]


def test_perf_analyzer_csv_is_read_in_milliseconds(tmp_path: Path):
    csv_path = tmp_path / "pa.csv"
    csv_path.write_text(
        "Concurrency,Inferences/Second,Client Send,Network+Server Send/Recv,Server Queue,Server Compute Input,"
        "Server Compute Infer,Server Compute Output,Client Recv,p50 latency,p90 latency,p95 latency,p99 latency\n"
        "4,14.3,42,4036,2,605,62447,1753,5,66060,82255,89982,149351\n")
    (row,) = parse_csv(csv_path)
    assert row.concurrency == 4 and row.throughput == pytest.approx(14.3)
    assert row.p50_ms == pytest.approx(66.06) and row.p95_ms == pytest.approx(89.982) and row.p99_ms == pytest.approx(149.351)


def test_bench_command_fails_cleanly_without_models(tmp_path: Path, caplog):
    from dermassist.cli import main

    assert main(["bench", "--repository", str(tmp_path), "--report-dir", str(tmp_path / "r")]) == 2
    assert f"dermassist models --repository {tmp_path}" in caplog.text  # not make models: it writes elsewhere


def test_triage_cost_is_the_extras_plus_the_triage_step_over_the_c1_p50(tmp_path: Path):
    extras = {"quality": 0.2, "classifier_extras": 1.3}
    inproc = InProcessResult(summarize([0.050] * 10, 20, 1.0), dict.fromkeys(STEPS, 1.0), 0.5, 4.0, extras)
    compute = {"prepare": 5.0, "lesion_segmenter": 15.0, "lesion_crop": 5.0, "lesion_classifier": 25.0, "triage": 0.5}
    result = BenchResult("test machine", "test corpus", inproc, [_level(1, 18, 60.0, compute)])
    parts, share = result.triage_cost()
    assert parts == pytest.approx({"quality": 0.2, "classifier_extras": 1.3, "triage step": 0.5})
    assert share == pytest.approx(2.0 / 60.0)
    target = next(t for t in result.targets() if t.name.startswith("triage"))
    assert target.met and target.limit == 0.10
    md, js = result.write(tmp_path)
    assert "triage step 0.50 ms = 3.3% of the served c=1 p50" in md.read_text()
    assert json.loads(js.read_text())["triage_cost"]["share_of_p50_c1"] == pytest.approx(2.0 / 60.0)


def test_perf_analyzer_setup_answers_help_instead_of_installing_into_a_folder_named_help(
        tmp_path, monkeypatch, capsys) -> None:
    from dermassist.bench import perf_analyzer

    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as info:
        perf_analyzer.main(["--help"])
    assert info.value.code == 0 and "print its path" in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == []
