"""The report folder is checked before the bench measures (it was found unusable only after minutes of it)."""
from __future__ import annotations

from pathlib import Path

import pytest

import dermassist.bench.runner as runner
from dermassist.bench.config import BenchConfig
from dermassist.bench.errors import BenchConfigError
from dermassist.bench.runner import prepare_report_dir, run_bench


def test_a_report_dir_under_a_file_or_that_is_a_file_is_a_config_error(tmp_path: Path) -> None:
    a_file = tmp_path / "FILE"
    a_file.write_text("x")
    with pytest.raises(BenchConfigError, match=rf"report_dir {a_file}/rep cannot be made: {a_file} is a file, not a "
                                               r"folder; .*--report-dir / DERMASSIST_BENCH_REPORT_DIR"):
        BenchConfig(report_dir=a_file / "rep")
    with pytest.raises(BenchConfigError, match=rf"report_dir {a_file} is a file"):
        BenchConfig.resolve({}, {"DERMASSIST_BENCH_REPORT_DIR": str(a_file)})
    assert BenchConfig(report_dir=tmp_path / "new" / "rep").report_dir == tmp_path / "new" / "rep"


def test_run_bench_makes_the_report_dir_before_it_measures(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner, "require_artifacts", lambda *a: (_ for _ in ()).throw(RuntimeError("measuring")))
    config = BenchConfig(report_dir=tmp_path / "sub" / "rep")
    with pytest.raises(RuntimeError, match="measuring"):
        run_bench(config)
    assert config.report_dir.is_dir()
    (tmp_path / "late").write_text("x")  # a file where the folder should be, made after the settings were checked
    late = BenchConfig(report_dir=tmp_path / "late2")
    object.__setattr__(late, "report_dir", tmp_path / "late" / "rep")
    with pytest.raises(BenchConfigError, match=rf"report_dir {tmp_path}/late/rep cannot be made a folder .*--report-dir"):
        run_bench(late)


def test_prepare_report_dir_keeps_an_existing_folder(tmp_path: Path) -> None:
    (tmp_path / "latest.md").write_text("kept")
    prepare_report_dir(tmp_path)
    assert (tmp_path / "latest.md").read_text() == "kept"


@pytest.mark.parametrize("where", ["level", "front"])
def test_a_level_that_fails_leaves_the_levels_measured_before_it_in_the_report(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, where: str) -> None:
    """A failed level raised BenchError and threw away the in-process figures and the levels already measured."""
    import contextlib
    import json
    import logging
    from types import SimpleNamespace

    import dermassist.base.server as server_module
    from dermassist.bench.errors import BenchError
    from dermassist.bench.inprocess import InProcessResult
    from dermassist.bench.latency import summarize
    from dermassist.bench.served import ServedLevel

    inprocess = InProcessResult(summarize([0.050] * 8, 8, 0.4), {}, 0.1)  # p50 50 ms on this machine
    monkeypatch.setattr(runner, "require_artifacts", lambda *a: None)
    monkeypatch.setattr(runner, "load_corpus", lambda spec: [b"jpeg"])
    monkeypatch.setattr(runner, "measure_inprocess", lambda *a: inprocess)
    monkeypatch.setattr(runner, "warm_up", lambda *a: None)
    fake = SimpleNamespace(config=SimpleNamespace(grpc_address="127.0.0.1:1", grpc_admin_headers={}), pid=None)
    monkeypatch.setattr(server_module, "embedded_server", lambda repository: contextlib.nullcontext(fake))

    def level(address: object, images: object, c: int, *rest: object) -> ServedLevel:
        if c == 4000:
            raise BenchError("served requests failed at concurrency 4000: Deadline Exceeded")
        return ServedLevel(c, summarize([0.060] * 24, 24, 1.5), {})

    monkeypatch.setattr(runner, "measure_level", level)
    if where == "front":  # the guard in front of the server fails to start (a ServerError): the levels were lost too
        from dermassist.base.errors import ServerError

        def front(*args: object) -> None:
            raise ServerError("the guard's front could not start: port 8001 is taken")

        monkeypatch.setattr(runner, "measure_behind_guard", front)
        config = BenchConfig(report_dir=tmp_path, concurrencies=(1,), perf_analyzer=False)
        with pytest.raises(BenchError, match=r"port 8001 is taken; the in-process figures and the 1 served level"):
            runner.run_bench(config)
        assert "| served gRPC (ours) | 1 | 24 |" in (tmp_path / "latest.md").read_text()
        return
    config = BenchConfig(report_dir=tmp_path, concurrencies=(1, 4000), perf_analyzer=False)
    with caplog.at_level(logging.WARNING, logger="dermassist.bench.runner"), \
            pytest.raises(BenchError, match=rf"concurrency 4000: Deadline Exceeded; the in-process figures and the 1 "
                                            rf"served level\(s\) measured before it are written to {tmp_path}/latest.md"):
        runner.run_bench(config)
    # 4000 calls at 50 ms: the last waits about 200 s, past the 120 s timeout (told before measuring); 1 x 50 ms is not
    assert [r.getMessage()[:15] for r in caplog.records] == ["concurrency 400"]
    assert "about 200 s, past the 120 s call timeout" in caplog.text
    text = (tmp_path / "latest.md").read_text()
    assert "**Incomplete: the run stopped** (served requests failed at concurrency 4000" in text
    assert "| in-process (batch 1, sequential) | 1 | 8 |" in text and "| served gRPC (ours) | 1 | 24 |" in text
    assert json.loads((tmp_path / "latest.json").read_text())["stopped"].endswith("Deadline Exceeded")


def test_fewer_requests_than_threads_are_raised_with_a_warning(monkeypatch: pytest.MonkeyPatch,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from dermassist.bench import served
    from dermassist.bench.errors import BenchError

    monkeypatch.setattr(served, "snapshot", lambda *a: (_ for _ in ()).throw(BenchError("stop here")))
    with caplog.at_level(logging.WARNING, logger="dermassist.bench.served"), pytest.raises(BenchError, match="stop here"):
        served.measure_level("127.0.0.1:1", [b"x"], concurrency=8, requests=3)
    assert caplog.records[0].getMessage() == "concurrency 8: 3 request(s) per level raised to 8, one per thread"


def test_a_failed_warm_up_is_told_as_the_warm_up(monkeypatch: pytest.MonkeyPatch) -> None:
    """It raised 'served requests failed at concurrency 2', a level nobody asked for (concurrencies 1 and 4)."""
    from dermassist.bench import served
    from dermassist.bench.errors import BenchError

    monkeypatch.setattr(served, "snapshot", lambda *a: {})
    with pytest.raises(BenchError) as raised:
        served.warm_up("127.0.0.1:1", [b"x"], 4)  # nothing listens on port 1
    assert str(raised.value).startswith("the warm-up's 4 request(s) failed, before any level was measured: ")
    assert "concurrency 2" not in str(raised.value)
