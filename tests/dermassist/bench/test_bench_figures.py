"""Exact figures of the benchmark that mutation testing found unpinned: percentiles and mean, per-image statistics,
targets at their limits, every column of the report, settings at their limits, and the recovery timer."""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from dermassist.bench.config import BenchConfig
from dermassist.bench.cpu import cpu_ms_per_image, cpu_snapshot, process_cpu_s
from dermassist.bench.errors import BenchConfigError, NoMeasurementsError
from dermassist.bench.front import FrontCost, FrontCosts
from dermassist.bench.inprocess import InProcessResult
from dermassist.bench.latency import LatencySummary, summarize
from dermassist.bench.perf_analyzer import PerfAnalyzerRow
from dermassist.bench.recovery import heal_once
from dermassist.bench.report import BenchResult
from dermassist.bench.served import ServedLevel
from dermassist.bench.stats import ModelStats, diff
from dermassist.guard.stubs import Stub

STEPS = ("prepare", "lesion_segmenter", "lesion_crop", "lesion_classifier")


# --- Latency -------------------------------------------------------------------------------------------------


def test_summary_mean_and_interpolated_percentiles() -> None:
    s = summarize([0.010] * 98 + [0.100, 0.200], images=100, wall_s=2.0)
    assert s.mean_ms == pytest.approx(12.8)  # (98 * 10 + 100 + 200) / 100
    assert s.samples == 100
    assert s.p99_ms == pytest.approx(101.0)  # rank 0.99 * 99 = 98.01: 100 + 0.01 * (200 - 100)
    assert s.p95_ms == pytest.approx(10.0)  # rank 0.95 * 99 = 94.05: both neighbours are 10 ms
    ramp = summarize([i / 1000 for i in range(1, 101)], images=100, wall_s=1.0)
    assert ramp.p95_ms == pytest.approx(95.05)  # rank 94.05 between 95 and 96 ms
    even = summarize([0.001, 0.002, 0.003, 0.004], images=4, wall_s=1.0)
    assert even.p50_ms == pytest.approx(2.5)  # rank 1.5: halfway between 2 and 3 ms
    with pytest.raises(NoMeasurementsError, match="positive wall time"):
        summarize([0.01], images=1, wall_s=0.0)


# --- Statistics ----------------------------------------------------------------------------------------------


def test_compute_per_image_sums_input_infer_and_output() -> None:
    stats = ModelStats(4, 2, {"compute_input": 4_000_000, "compute_infer": 8_000_000, "compute_output": 12_000_000})
    assert stats.compute_ms_per_image == pytest.approx(6.0)  # (4 + 8 + 12) ms / 4 images
    assert stats.mean_batch == pytest.approx(2.0)


def test_statistics_of_a_model_that_ran_nothing_are_zero() -> None:
    assert ModelStats(0, 2, {"queue": 5_000_000}).per_image_ms("queue") == 0.0  # no image: no per-image time
    assert ModelStats(4, 0, {}).mean_batch == 0.0  # no execution: no batch


def test_a_model_absent_from_the_first_snapshot_counts_from_zero() -> None:
    after = {"triage": ModelStats(6, 3, {"queue": 600, "compute_infer": 900})}
    d = diff(after, {})["triage"]
    assert (d.inference_count, d.execution_count, d.ns["queue"], d.ns["compute_infer"], d.ns["compute_input"]) == \
        (6, 3, 600, 900, 0)


# --- Report --------------------------------------------------------------------------------------------------


def _summary(images_per_s: float, p50_ms: float, p99_ms: float, samples: int | None = 100) -> LatencySummary:
    """A summary whose p95 is 10 ms under its p99 (each column of the report tells which figure it shows)."""
    return LatencySummary(images=10, wall_s=1.0, images_per_s=images_per_s, p50_ms=p50_ms, p95_ms=p99_ms - 10.0, p99_ms=p99_ms,
                          mean_ms=p50_ms, samples=samples)


def _level(c: int, summary: LatencySummary, compute: dict[str, float]) -> ServedLevel:
    """A level whose models took ``compute`` ms per image (10 images, 5 executions), 0.5 ms queue each."""
    models = {m: ModelStats(10, 5, {"compute_infer": round(ms * 1e6 * 10), "queue": 5_000_000}) for m, ms in compute.items()}
    return ServedLevel(c, summary, models)


def _inprocess(**kwargs: object) -> InProcessResult:
    step_ms = {"prepare": 1.5, "lesion_segmenter": 12.0, "lesion_crop": 2.5, "lesion_classifier": 30.0}
    return InProcessResult(_summary(20.0, 50.0, 80.0), step_ms, 0.5, **kwargs)  # type: ignore[arg-type]


def test_targets_exactly_at_their_limits() -> None:
    # c=4: 20 images/s over the in-process 20 = 1.0 (>= 1.0 met); c=1 p50 65 ms over 50 ms = 1.3 (<= 1.3 met);
    # prepare 10 of 100 ms = 0.10 (< 0.10 not met); triage (1 + 2 + 3.5) ms over the 65 ms p50 = 0.10 (<= 0.10 met)
    compute = {"prepare": 10.0, "lesion_segmenter": 40.0, "lesion_crop": 5.0, "lesion_classifier": 45.0, "triage": 3.5}
    result = BenchResult("m", "c", _inprocess(triage_extras_ms={"quality": 1.0, "classifier_extras": 2.0}),
                         [_level(1, _summary(15.0, 65.0, 500.0), compute), _level(4, _summary(20.0, 90.0, 99.0), compute)])
    targets = {t.name: (t.value, t.met) for t in result.targets()}
    assert targets == {
        "served images/s at c=4 / in-process": (1.0, True),
        "served p50 at c=1 / in-process p50": (1.3, True),
        "prepare share of compute (c=1)": (pytest.approx(10.0 / 103.5), True),  # the triage step counts: 103.5 ms
        "lesion_crop share of compute (c=1)": (pytest.approx(5.0 / 103.5), True),
        "triage outputs' cost / served p50 at c=1": (pytest.approx(0.1), True),
    }
    without_triage = {m: v for m, v in compute.items() if m != "triage"}
    shares = BenchResult("m", "c", _inprocess(), [_level(1, _summary(15.0, 65.0, 500.0), without_triage)]).targets()
    assert [(t.name, t.value, t.met) for t in shares if t.name.startswith("prepare")] == \
        [("prepare share of compute (c=1)", 0.1, False)]


def test_step_shares_come_from_c1_when_measured_and_from_c4_otherwise() -> None:
    c1 = {"prepare": 5.0, "lesion_segmenter": 15.0, "lesion_crop": 5.0, "lesion_classifier": 25.0}  # of 50 ms
    c4 = {"prepare": 30.0, "lesion_segmenter": 30.0, "lesion_crop": 20.0, "lesion_classifier": 20.0}  # of 100 ms
    both = BenchResult("m", "c", _inprocess(), [_level(1, _summary(15.0, 60.0, 90.0), c1),
                                                _level(4, _summary(25.0, 150.0, 300.0), c4)])
    shares = {t.name: t.value for t in both.targets() if "share" in t.name}
    assert shares == {"prepare share of compute (c=1)": pytest.approx(0.10), "lesion_crop share of compute (c=1)":
                      pytest.approx(0.10)}
    only_c4 = BenchResult("m", "c", _inprocess(), [_level(4, _summary(25.0, 150.0, 300.0), c4)])
    assert {t.name: t.value for t in only_c4.targets() if "share" in t.name} == {
        "prepare share of compute (c=4)": pytest.approx(0.30), "lesion_crop share of compute (c=4)": pytest.approx(0.20)}
    idle = _level(1, _summary(15.0, 60.0, 90.0), dict.fromkeys(STEPS, 0.0))
    assert both.step_shares(idle) == dict.fromkeys(STEPS, 0.0)  # nothing computed: no share, no division by zero


def test_every_figure_of_the_report_in_its_column(tmp_path: Path) -> None:
    compute = {"prepare": 5.0, "lesion_segmenter": 15.0, "lesion_crop": 5.0, "lesion_classifier": 25.0}  # of 50 ms
    result = BenchResult(
        "m", "c", _inprocess(),
        [_level(1, _summary(18.0, 60.0, 90.0), compute), _level(4, _summary(25.0, 150.0, 300.0), compute)],
        perf_analyzer=[PerfAnalyzerRow(concurrency=4, throughput=24.0, p50_ms=140.0, p95_ms=260.0, p99_ms=280.0, avg_ms=150.0)],
        front=FrontCosts((FrontCost(1, 50, direct_p50_ms=60.0, direct_p95_ms=70.0, front_p50_ms=61.5, front_p95_ms=71.0),)),
        models="model_repository (.release-stamp abc)", load_average=(0.5, 3.25),
        started_utc="2026-12-06T14:00:00+00:00", settings="concurrencies 1, 4; 96 requests per level")
    md, _ = result.write(tmp_path)
    text = md.read_text()
    lines = text.splitlines()
    # in-process: 20 images/s, p50 50 ms; served c=4: 25/20 = 1.25x, 150/50 = 3.00x; perf_analyzer: 24/20, 140/50
    assert "| in-process (batch 1, sequential) | 1 | 100 | 20.00 | 50.0 | 70.0 | 80.0 | 1.00x | 1.00x |" in lines
    assert "| served gRPC (ours) | 1 | 100 | 18.00 | 60.0 | 80.0 | 90.0 | 0.90x | 1.20x |" in lines
    assert "| served gRPC (ours) | 4 | 100 | 25.00 | 150.0 | 290.0 | 300.0 | 1.25x | 3.00x |" in lines
    assert "| perf_analyzer | 4 | - | 24.00 | 140.0 | 260.0 | 280.0 | 1.20x | 2.80x |" in lines
    cores = os.cpu_count() or 1
    busy = " (more runnable work than cores: other work shared the machine)" if 3.25 > cores else ""
    assert "Models: model_repository (.release-stamp abc)." in lines[3]
    assert lines[2] == "Run started 2026-12-06T14:00:00+00:00. Settings: concurrencies 1, 4; 96 requests per level."
    assert f"Load average (1 min) before / after the run: 0.50 / 3.25 on {cores} cores{busy}." in lines
    # front: 61.5 - 60 = 1.50 ms added, 61.5 / 60 = 1.025x; p95 71 - 70 = 1.00 ms, 71 / 70 = 1.014x
    assert "| plaintext | 1 | 50 | 60.0 | 61.5 | +1.50 | 1.025x | 70.0 | 71.0 | +1.00 | 1.014x |" in lines
    # per step: in-process ms, then per level compute / queue (5 ms / 10 images) / batch (10 / 5) / share of 50 ms
    assert "| prepare | 1.5 | 5.0 / 0.5 / 2.0 / 10% | 5.0 / 0.5 / 2.0 / 10% |" in lines
    assert "| lesion_classifier | 30.0 | 25.0 / 0.5 / 2.0 / 50% | 25.0 / 0.5 / 2.0 / 50% |" in lines
    assert "| triage | 0.0 | n/a | n/a |" in lines
    assert "| served p50 at c=1 / in-process p50 | 1.200 | 1.30 | yes |" in lines  # 60 / 50
    assert "| served images/s at c=4 / in-process | 1.250 | 1.00 | yes |" in lines


def test_a_percentile_from_too_few_samples_is_marked_with_its_sample_count() -> None:
    # 8 in-process samples: p95 (needs 20) and p99 (needs 100) are about the slowest call; 24 served: p95 stands, p99 not
    result = BenchResult("m", "c", InProcessResult(_summary(20.0, 50.0, 80.0, samples=8), {}, 0.5),
                         [_level(1, _summary(18.0, 60.0, 90.0, samples=24), {}),
                          _level(4, _summary(25.0, 150.0, 300.0, samples=None), {})],
                         front=FrontCosts((FrontCost(1, 19, 60.0, 70.0, 61.5, 71.0), FrontCost(4, 20, 60.0, 70.0, 61.5, 71.0))))
    lines = result.markdown().splitlines()
    assert "| in-process (batch 1, sequential) | 1 | 8 | 20.00 | 50.0 | 70.0* | 80.0* | 1.00x | 1.00x |" in lines
    assert "| served gRPC (ours) | 1 | 24 | 18.00 | 60.0 | 80.0 | 90.0* | 0.90x | 1.20x |" in lines
    assert "| served gRPC (ours) | 4 | - | 25.00 | 150.0 | 290.0 | 300.0 | 1.25x | 3.00x |" in lines  # count not recorded
    assert "| plaintext | 1 | 19 | 60.0 | 61.5 | +1.50 | 1.025x | 70.0* | 71.0* | +1.00 | 1.014x |" in lines
    assert "| plaintext | 4 | 20 | 60.0 | 61.5 | +1.50 | 1.025x | 70.0 | 71.0 | +1.00 | 1.014x |" in lines
    assert sum("(p95: 20, p99: 100)" in line for line in lines) == 2  # the footnote under each table


# --- Settings ------------------------------------------------------------------------------------------------


def test_the_report_names_the_served_release_and_says_when_the_load_was_not_recorded(tmp_path: Path) -> None:
    from dermassist.base.repository import served_models

    (tmp_path / ".release-stamp").write_text("d2b5e628d7b5b806\n")
    assert served_models(tmp_path) == f"{tmp_path} (.release-stamp d2b5e628d7b5b806)"
    assert "no .release-stamp" in served_models(tmp_path / "elsewhere")
    plain = BenchResult("m", "c", _inprocess(), [])
    assert "Load average: not recorded." in plain.markdown() and plain.to_json()["load_average"] is None


def test_bench_settings_accept_their_smallest_values_and_refuse_no_concurrency() -> None:
    config = BenchConfig(requests_per_level=1, inprocess_passes=1, per_size=1, perf_analyzer_window_ms=1, warmup=0,
                         inprocess_torch_threads=0, concurrencies=(1,))
    assert (config.requests_per_level, config.warmup, config.concurrencies) == (1, 0, (1,))
    with pytest.raises(BenchConfigError, match="--concurrency / DERMASSIST_BENCH_CONCURRENCIES"):
        BenchConfig(concurrencies=())
    with pytest.raises(BenchConfigError, match="warmup"):
        BenchConfig(warmup=-1)


# --- Recovery timer ------------------------------------------------------------------------------------------


def test_heal_once_waits_for_a_new_recovery_and_for_readiness() -> None:
    """The guard is ready with one earlier recovery on record; the fault (signal 0 to this process: harmless) is
    detected, then healed: ready again 0.25 s after detection, and readiness comes back 0.3 s after that."""
    earlier = SimpleNamespace(action="reload", detected_at=0.0, ready_at=1.0)
    inner = SimpleNamespace(recoveries=[earlier], stubs=[Stub(os.getpid(), "prepare", "prepare_0_0")],
                            readiness=SimpleNamespace(ready=True))

    def guard_heals() -> None:
        time.sleep(0.05)
        inner.readiness.ready = False
        detected = time.monotonic()
        inner.recoveries.append(SimpleNamespace(action="restart", detected_at=detected, ready_at=detected + 0.25))
        time.sleep(0.3)
        inner.readiness.ready = True

    healer = threading.Thread(target=guard_heals)
    healer.start()
    try:
        action, down, up = heal_once(SimpleNamespace(guard=inner), "prepare", 0, timeout_s=30)
        ready_when_returned = inner.readiness.ready
    finally:
        healer.join()
    assert action == "restart" and ready_when_returned
    assert 0 < down and up - down == pytest.approx(0.25)


def test_heal_once_gives_up_after_its_timeout() -> None:
    inner = SimpleNamespace(recoveries=[], stubs=[Stub(os.getpid(), "prepare", "prepare_0_0")],
                            readiness=SimpleNamespace(ready=True))
    with pytest.raises(TimeoutError, match="prepare was not healed"):
        heal_once(SimpleNamespace(guard=inner), "prepare", 0, timeout_s=0.05)


# --- CPU per image -------------------------------------------------------------------------------------------


def test_cpu_per_image_is_each_process_groups_cpu_over_the_images_and_the_report_shows_what_a_core_sustains(
        tmp_path: Path) -> None:
    """An operator's audit, finding 5: nothing measured the CPU an image costs, which sizes a GPU host's cores."""
    before = {"tritonserver": 10.0, "prepare": 2.0, "lesion_classifier": 5.0, "gone": 1.0}
    after = {"tritonserver": 10.5, "prepare": 3.0, "lesion_classifier": 7.0, "new": 9.0}
    # 100 images: 0.5 s -> 5 ms, 1 s -> 10 ms, 2 s -> 20 ms each; "gone" and "new" are not in both snapshots
    assert cpu_ms_per_image(before, after, 100) == pytest.approx(
        {"tritonserver": 5.0, "prepare": 10.0, "lesion_classifier": 20.0, "total": 35.0})
    assert cpu_ms_per_image({"prepare": 3.0}, {"prepare": 1.0}, 10) == {"prepare": 0.0, "total": 0.0}  # a restarted stub
    assert cpu_ms_per_image(before, after, 0) == {} and cpu_ms_per_image({}, after, 5) == {}
    compute = dict.fromkeys(STEPS, 10.0)
    level = ServedLevel(1, _summary(18.0, 60.0, 90.0), _level(1, _summary(18.0, 60.0, 90.0), compute).models,
                        cpu_ms_per_image(before, after, 100))
    lines = BenchResult("m", "c", _inprocess(), [level]).markdown().splitlines()
    assert "| tritonserver | 5.0 |" in lines and "| prepare | 10.0 |" in lines and "| total | 35.0 |" in lines
    assert "| images/s one core sustains (1000 / total) | 28.6 |" in lines  # 1000 / 35
    unread = BenchResult("m", "c", _inprocess(), [_level(1, _summary(18.0, 60.0, 90.0), compute)]).markdown()
    assert "CPU per image: not read" in unread


def test_the_cpu_time_of_a_process_is_read_from_proc_and_grows() -> None:
    first = process_cpu_s(os.getpid())
    sum(i * i for i in range(300_000))  # some CPU work in this process
    second = process_cpu_s(os.getpid())
    assert first is not None and second is not None and second >= first
    assert process_cpu_s(2 ** 22 + 12345) is None  # no such process
    assert cpu_snapshot(2 ** 22 + 12345) == {}


def test_the_recovery_bench_gives_its_guard_an_audit_file_it_takes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """Its default was /dev/null, which the guard now refuses as a device: the documented command ended in a
    ConfigError. The default is a temporary file, gone at the end; --audit-log still names one."""
    from dermassist.bench import recovery
    from dermassist.guard.config import GuardConfig

    given: list[str] = []

    def measure(repository: Path, audit_log: str) -> list[str]:
        GuardConfig(audit_log=audit_log)  # what the bench's guard is made with: refused if it cannot take it
        given.append(audit_log)
        return ["| prepare SIGKILL | reload | 0.10 | 2.00 |"]

    monkeypatch.setattr(recovery, "measure", measure)
    assert recovery.main(["--repository", str(tmp_path)]) == 0
    assert recovery.main(["--repository", str(tmp_path), "--audit-log", str(tmp_path / "kept.jsonl")]) == 0
    assert given[0].endswith("audit.jsonl") and not Path(given[0]).parent.exists()  # deleted at the end
    assert given[1] == str(tmp_path / "kept.jsonl")
    assert "| prepare SIGKILL | reload |" in capsys.readouterr().out


def test_the_warm_up_is_logged_as_the_warm_up_not_as_a_measured_level(monkeypatch: pytest.MonkeyPatch,
                                                                         caplog: pytest.LogCaptureFixture) -> None:
    """It was logged 'served c=2: 8.70 images/s', a level nobody asked for (DERMASSIST_BENCH_CONCURRENCIES=1,4)."""
    import logging

    from dermassist.bench import served

    calls: list[tuple[int, int, int]] = []
    monkeypatch.setattr(served, "measure_level", lambda address, images, concurrency, requests, headers=None, **kw:
                        calls.append((concurrency, requests, kw.get("log_level"))))
    with caplog.at_level(logging.INFO, logger="dermassist.bench.served"):
        served.warm_up("127.0.0.1:1", [b"x"], 4)
        served.warm_up("127.0.0.1:1", [b"x"], 0)
    assert calls == [(2, 4, logging.DEBUG)]
    assert [r.getMessage() for r in caplog.records] == ["warm-up: 4 request(s), not measured"]
