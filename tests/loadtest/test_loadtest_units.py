"""Unit tests of the load-test pieces that need no server: wire format, config, corpus, CSV."""
from __future__ import annotations

import re
from pathlib import Path

import grpc
import pytest
from tritonclient.utils import deserialize_bytes_tensor

from dermassist.base.corpus import CorpusSpec, bad_inputs, build_corpus
from loadtest.config import RunConfig, ScenarioConfig, check_grpc_host
from loadtest.errors import LoadtestConfigError, LocustRunError
from loadtest.protocol import REQUESTED_OUTPUTS, infer_request, rejection_outcome, serialize_bytes_elements
from loadtest.report import read_stats
from preprocess.errors import InvalidImageError
from preprocess.prepare import prepare_images


def test_bytes_elements_round_trip_through_tritons_decoder():
    blobs = [b"", b"\x00\x01jpeg", bytes(range(256)) * 3]
    decoded = deserialize_bytes_tensor(serialize_bytes_elements(blobs))
    assert [bytes(b) for b in decoded] == blobs


def test_infer_request_shapes_one_row_per_image_and_skips_crop():
    request = infer_request([b"a", b"bb", b"ccc"], request_id="r1")
    assert request.model_name == "dermassist" and request.id == "r1"
    assert list(request.inputs[0].shape) == [3, 1] and request.inputs[0].datatype == "BYTES"
    assert [o.name for o in request.outputs] == list(REQUESTED_OUTPUTS)
    assert "CROP" not in REQUESTED_OUTPUTS
    assert len(request.raw_input_contents) == 1


def test_rejection_outcome_only_accepts_invalid_argument():
    expected = grpc.StatusCode.INVALID_ARGUMENT
    assert rejection_outcome(expected, expected) is None
    assert "accepted" in rejection_outcome(None, expected)
    assert "INTERNAL" in rejection_outcome(grpc.StatusCode.INTERNAL, expected, "boom")


def test_scenario_probabilities_sum_to_one_with_requested_bad_share():
    probs = ScenarioConfig(single_weight=2, batch_weight=1, bad_share=0.01).probabilities()
    assert sum(probs.values()) == pytest.approx(1.0)
    assert probs["bad_input"] == pytest.approx(0.01)
    assert probs["single"] == pytest.approx(2 * probs["batch"])


@pytest.mark.parametrize("kwargs", [{"bad_share": 1.0}, {"bad_share": -0.1}, {"batch_size": 0},
                                    {"deadline_s": 0}, {"single_weight": 0, "batch_weight": 0}])
def test_scenario_rejects_bad_settings(kwargs):
    with pytest.raises(LoadtestConfigError):
        ScenarioConfig(**kwargs)


def test_run_config_precedence_cli_over_env_over_default():
    env = {"LOADTEST_USERS": "7", "LOADTEST_RUN_TIME_S": "9"}
    assert RunConfig.resolve({"users": 3}, env).users == 3
    assert RunConfig.resolve({"users": None}, env).users == 7
    assert RunConfig.resolve({}, env).run_time_s == 9
    assert RunConfig.resolve({}, {}).users == RunConfig().users
    with pytest.raises(LoadtestConfigError, match="LOADTEST_USERS"):
        RunConfig.resolve({}, {"LOADTEST_USERS": "many"})
    with pytest.raises(LoadtestConfigError, match="HOST:PORT"):
        RunConfig(host="http://triton:8001")
    for bad in ("triton", "grpc://triton:8001", ""):
        with pytest.raises(LoadtestConfigError, match="no scheme"):
            check_grpc_host(bad)  # the check every Locust user runs on --host
    check_grpc_host("triton:8001")


def test_mix_text_names_every_scenario_share():
    assert ScenarioConfig(single_weight=1, batch_weight=1, bad_share=0.1).mix_text() == (
        "single 45.0%, batch 45.0%, bad_input 10.0%")


def test_scenario_env_round_trip():
    config = ScenarioConfig(bad_share=0.05, batch_size=4, deadline_s=12.5)
    assert ScenarioConfig.resolve({}, config.to_env()) == config


def test_corpus_spans_real_sizes_and_bad_inputs_are_invalid(shared_data: Path, tmp_path: Path):
    import cv2

    files = build_corpus(CorpusSpec(cache_dir=tmp_path, per_size=1, sizes=((600, 450), (3000, 2000))))
    shapes = [cv2.imread(str(f)).shape[:2] for f in files]
    assert shapes == [(450, 600), (2000, 3000)]
    assert files[0].parent == CorpusSpec().source_dir and files[1].parent == tmp_path  # the original, as it is
    bad = bad_inputs(files[0].read_bytes())
    assert set(bad) == {"empty", "not_an_image", "truncated_jpeg", "too_small_png"}  # an empty corpus would pass below
    results = prepare_images(list(bad.values()))
    assert all(isinstance(r, InvalidImageError) for r in results), results


def test_read_stats_parses_locust_csv(tmp_path: Path):
    header = ("Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,Min Response Time,"
              "Max Response Time,Average Content Size,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%")
    csv_path = tmp_path / "x_stats.csv"
    csv_path.write_text("\n".join([
        header,
        "grpc,single,10,0,40,41.5,30,90,66000,2.5,0,40,45,50,55,60,70,80,90,90,90,90",
        "grpc,batch8,4,0,300,310,250,400,520000,1.0,0,300,320,330,340,350,380,390,400,400,400,400",
        "grpc,bad_input:rejected,2,1,5,5,4,6,50,0.1,0.1,5,5,6,6,6,6,6,6,6,6,6",
        ",Aggregated,16,1,38,35,4,400,55000,3.6,0.1,38,44,50,55,60,70,80,90,90,90,90",
    ]) + "\n")
    summary = read_stats(csv_path)
    assert summary.total.requests == 16 and summary.unexpected_failures == 1 and not summary.ok()
    idle = type(summary)(rows={}, total=type(summary.total)(**{**summary.total.__dict__, "requests": 0, "failures": 0}))
    assert not idle.ok()  # a run that made no request proves nothing
    assert summary.rows["single"].p95_ms == 70 and summary.rows["single"].rps == 2.5
    assert summary.images_per_s() == pytest.approx(2.5 * 1 + 1.0 * 8 + 0.1 * 0)  # by hand: 10.5 images a second
    table = summary.table()
    assert "| single | 10 | 0 | 2.50 | 2.50 |" in table and "| batch8 | 4 | 0 | 1.00 | 8.00 |" in table
    assert "| all requests | 16 | 1 | 3.60 | 10.50 | - | - | - |" in table
    assert "to 10 ms under 1 s" in table and "(p95: 21, p99: 101)" in table  # Locust's rounding, the thin percentiles
    many_csv = tmp_path / "many_stats.csv"
    many_csv.write_text("\n".join([header, "grpc,single,100,0,40,41.5,30,90,66000,2.5,0,40,45,50,55,60,70,80,90,90,90,90",
                                   "grpc,batch8,101,0,40,41.5,30,90,66000,2.5,0,40,45,50,55,60,70,80,90,90,90,90",
                                   ",Aggregated,201,0,40,41.5,30,90,66000,2.5,0,40,45,50,55,60,70,80,90,90,90,90"]) + "\n")
    many = read_stats(many_csv)
    assert "| single | 100 | 0 | 2.50 | 2.50 | 40 | 70 | 90* |" in many.table()  # Locust's p99 of 100: the slowest
    assert "| batch8 | 101 | 0 | 2.50 | 20.00 | 40 | 70 | 90 |" in many.table()  # 101 requests: p95 and p99 stand

    with pytest.raises(LocustRunError, match="does not exist"):
        read_stats(tmp_path / "missing.csv")


def test_run_exits_2_and_says_make_models_when_artifacts_are_missing(tmp_path: Path, caplog):
    from loadtest.run import main

    assert main(["--repository", str(tmp_path), "--report-dir", str(tmp_path / "r"), "-t", "1"]) == 2
    assert f"dermassist models --repository {tmp_path}" in caplog.text  # not make models: it writes elsewhere


def test_only_unavailability_and_unhealthy_steps_are_retried():
    from loadtest.protocol import backoff_s, retryable

    assert retryable(grpc.StatusCode.UNAVAILABLE, "DermAssist is not ready")
    assert retryable(grpc.StatusCode.INTERNAL, "Stub process 'lesion_crop_0_0' is not healthy.")
    assert not retryable(grpc.StatusCode.INTERNAL, "boom")
    assert retryable(grpc.StatusCode.CANCELLED, "CANCELLED")  # a server that began stopping dropped the call
    assert not retryable(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded")
    assert not retryable(grpc.StatusCode.INVALID_ARGUMENT, "IMAGE row 0: not an image")
    assert [backoff_s(a) for a in range(6)] == [0.1, 0.2, 0.4, 0.8, 1.6, 2.0]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"fault": "explode"}, "fault must be one of"),
    ({"fault": "kill", "host": "h:1"}, "only be injected into the embedded server"),
    ({"fault": "kill", "fault_at_s": 99, "run_time_s": 30}, "inside the run"),
    ({"fault": "kill", "fault_model": "lesion-crop"},
     "fault_model must name a step of the ensemble, one of prepare, lesion_segmenter, lesion_crop, lesion_classifier, "
     "triage; got 'lesion-crop': set --fault-model / LOADTEST_FAULT_MODEL to one of them"),
])
def test_fault_settings_are_checked(kwargs, message):
    with pytest.raises(LoadtestConfigError, match=re.escape(message)):
        RunConfig(**kwargs)


def test_the_fault_model_is_checked_before_any_server_starts(monkeypatch, tmp_path: Path, caplog) -> None:
    """A misspelt --fault-model was only found once the server had loaded every model (FaultInjector)."""
    from loadtest import run

    monkeypatch.setattr(run, "_embedded_guard", lambda *_: pytest.fail("the server was started"))
    assert run.main(["--fault", "kill", "--fault-model", "ensemble", "--report-dir", str(tmp_path)]) == 2
    assert "fault_model must name a step of the ensemble" in caplog.text


def test_a_report_folder_that_cannot_be_written_is_refused_before_any_server_starts(monkeypatch, caplog) -> None:
    """It failed with a traceback once the server had loaded every model."""
    from loadtest import run

    monkeypatch.setattr(run, "_embedded_guard", lambda *_: pytest.fail("the server was started"))
    assert run.main(["--report-dir", "/proc/1/loadtest", "-t", "5"]) == 2
    assert "--report-dir / LOADTEST_REPORT_DIR /proc/1/loadtest cannot be written (" in caplog.text


def test_a_refused_setting_names_the_flag_typed_or_the_variable_without_a_flag() -> None:
    with pytest.raises(LoadtestConfigError, match=r"^--run-time / LOADTEST_RUN_TIME_S must be at least 1"):
        RunConfig(run_time_s=0)
    with pytest.raises(LoadtestConfigError, match=r"^LOADTEST_RETRIES must be >= 0"):
        ScenarioConfig(retries=-1)
    with pytest.raises(LoadtestConfigError, match=r"^--deadline / LOADTEST_DEADLINE_S must be a positive number"):
        ScenarioConfig(deadline_s=0)


def test_the_fault_settings_copy_the_contract_and_the_injectors_signals() -> None:
    """loadtest.config copies the contract's step names (the Locust image ships no preprocess); the fault kinds are
    the injector's signals."""
    from loadtest.config import CROP_MODEL, FAULTS, STEP_MODELS
    from loadtest.faults import SIGNALS
    from preprocess import contract

    assert (CROP_MODEL, STEP_MODELS) == (contract.CROP_MODEL, contract.STEP_MODELS)
    assert RunConfig().fault_model == contract.CROP_MODEL
    assert FAULTS == ("", *SIGNALS)


def test_server_counts_are_those_of_the_run_not_since_the_server_started() -> None:
    from loadtest.run import counts_during

    before = {"model": "dermassist", "success": 120, "fail": 3}
    after = {"model": "dermassist", "success": 470, "fail": 5}
    during = counts_during(before, after)
    assert (during["success"], during["fail"]) == (350, 2)  # 470 - 120, 5 - 3
    assert during["since_model_load"] == {"success": 470, "fail": 5} and "note" not in during
    assert "since_server_start" not in during and "INVALID_ARGUMENT" in during["fail_note"]
    # a count that went down: the server restarted in between, so only the counts since that restart are known
    restarted = counts_during(before, {"model": "dermassist", "success": 40, "fail": 0})
    assert (restarted["success"], restarted["fail"]) == (40, 0) and "went down" in restarted["note"]
    # a restart the guard reports, although every count went up (3 canary calls before, 500 answers after it)
    said = counts_during({"model": "dermassist", "success": 3, "fail": 0}, after, resets=["restart"])
    assert (said["success"], said["fail"]) == (470, 5) and "restart" in said["note"]
    unread = counts_during({"model": "dermassist", "error": "permission denied"}, after)
    assert unread["success"] == 470 and "could not be read (permission denied)" in unread["note"]
    failed = {"model": "dermassist", "error": "unavailable"}
    assert counts_during(before, failed) == failed


def test_a_guard_reload_resets_the_server_counts_like_a_restart() -> None:
    """The guard's reload unloads and loads the faulty steps, and the ensemble with them: Triton counts from 0 again."""
    from loadtest.run import counter_resets, counts_during

    actions = ["reload lesion_crop", "restart", "reload prepare, triage, then restart"]
    assert counter_resets(actions) == actions  # every recovery the guard makes resets the ensemble's counts
    assert counter_resets([]) == []
    # 120 answers before the run; a reload mid-run; 130 answers since it: 130 - 120 = 10 would be wrong
    before = {"model": "dermassist", "success": 120, "fail": 3}
    after = {"model": "dermassist", "success": 130, "fail": 4}
    during = counts_during(before, after, resets=counter_resets(["reload lesion_crop"]))
    assert (during["success"], during["fail"]) == (130, 4)  # since the reload, not a difference
    assert "reload lesion_crop" in during["note"] and "since_server_start" not in during
    assert during["since_model_load"] == {"success": 130, "fail": 4}


def test_images_per_s_counts_successful_requests_only(tmp_path: Path):
    """A failed request analysed no image: images/s = successes / duration x images per request."""
    header = "Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,Requests/s,Failures/s,50%,95%,99%"
    dead = tmp_path / "dead_stats.csv"  # a dead port: 8 requests over 2.63 s, all failed
    dead.write_text("\n".join([header, "grpc,single,8,8,3,3,3.04,3.04,3,3,3", ",Aggregated,8,8,3,3,3.04,3.04,3,3,3"]) + "\n")
    assert read_stats(dead).images_per_s() == 0.0
    assert "| single | 8 | 8 | 3.04 | 0.00 |" in read_stats(dead).table()
    mixed = tmp_path / "mixed_stats.csv"  # 4 s: single 10 requests (2 failed), batch8 4 requests (1 failed)
    mixed.write_text("\n".join([header, "grpc,single,10,2,40,40,2.5,0.5,40,70,90", "grpc,batch8,4,1,300,300,1.0,0.25,300,380,400",
                                 ",Aggregated,14,3,40,40,3.5,0.75,40,380,400"]) + "\n")
    summary = read_stats(mixed)
    # by hand: single (10 - 2) / 4 s x 1 = 2.0 images/s; batch8 (4 - 1) / 4 s x 8 = 6.0 images/s; 8.0 in all
    assert summary.rows["single"].images_per_s() == pytest.approx(2.0)
    assert summary.rows["batch8"].images_per_s() == pytest.approx(6.0)
    assert summary.images_per_s() == pytest.approx(8.0)
    assert "| all requests | 14 | 3 | 3.50 | 8.00 | - | - | - |" in summary.table()
    # 3 of the failures passed their deadline (2 at the server, 1 cut at --stop-timeout): calls answered per second
    # (10 - 2) / 4 + (4 - 1) / 4 = 2.75, so by Little's law 2.75 x 60 s = 165 users' calls fit within the deadline
    failures = {"_InactiveRpcError(status = StatusCode.DEADLINE_EXCEEDED)": 2, "CutAtStop('no answer after 65 s')": 1,
                "BadAnswer('rows')": 5}
    problem = summary.saturation_problem(failures, users=500, deadline_s=60)
    assert problem is not None and problem.startswith("3 call(s) got no answer within the 60 s deadline: 500 users")
    assert "answered 2.75 calls/s (8.00 images/s), so at most about 165 users" in problem
    assert summary.saturation_problem({"BadAnswer('rows')": 5}, users=500, deadline_s=60) is None
    short = {"StopTimeoutTooShort('no answer after 1 s ... shorter than the per-call deadline')": 4}
    assert summary.saturation_problem(short, users=500, deadline_s=60) is None  # the setting cut them, not the server
    few = summary.saturation_problem(failures, users=20, deadline_s=60)  # 20 users, far below the 165 that fit
    assert "asked more than the target serves" not in few and "it slowed down or stalled during the run" in few
    assert "though 20 users are fewer than the about 165 the target answers in time" in few
    assert "none was answered" in read_stats(dead).saturation_problem(failures, users=4, deadline_s=60)


def test_failures_are_read_per_error_from_locusts_csv(tmp_path: Path):
    from loadtest.report import read_failures

    path = tmp_path / "x_final_failures.csv"  # Locust's columns; one error under two request names
    path.write_text("Method,Name,Error,Occurrences\ngrpc,single,CutAtStop('x'),2\ngrpc,batch8,CutAtStop('x'),1\n"
                    "grpc,single,\"_InactiveRpcError(status = StatusCode.DEADLINE_EXCEEDED, details = \"\"Deadline\"\")\",4\n")
    assert read_failures(path) == {"CutAtStop('x')": 3,
                                   '_InactiveRpcError(status = StatusCode.DEADLINE_EXCEEDED, details = "Deadline")': 4}
    assert read_failures(tmp_path / "missing.csv") == {}  # a run without failures may write none
    (tmp_path / "bad.csv").write_text("Method,Name,Error,Occurrences\ngrpc,single,x,many\n")
    with pytest.raises(LocustRunError, match="not a Locust failures CSV"):
        read_failures(tmp_path / "bad.csv")


def test_summary_counts_the_last_calls_of_the_run(tmp_path: Path, monkeypatch):
    """Locust's periodic stats CSV misses the calls that end after its last rewrite (the users' last calls, in flight
    when the run time is up); the summary counts them, failures included."""
    import json

    from loadtest import runner

    monkeypatch.setattr(runner, "LOCUSTFILE", Path(__file__).parent / "locustfiles" / "last_calls.py")
    truth = tmp_path / "truth.json"
    monkeypatch.setenv("LAST_CALLS_TRUTH", str(truth))
    run = RunConfig(users=2, spawn_rate=10, run_time_s=1, report_dir=tmp_path / "reports", host="127.0.0.1:1")
    summary, files = runner.run_locust(run, ScenarioConfig(), run.host)
    seen = json.loads(truth.read_text())  # every request event the Locust process fired
    assert seen["failures"] == 2  # one failing last call per user, 2 users
    assert (summary.total.requests, summary.total.failures) == (seen["requests"], seen["failures"])
    assert summary.rows["last"].requests == 2 and summary.rows["last"].failures == 2
    assert summary.rows["single"].requests == seen["requests"] - 2 and not summary.ok()
    from loadtest.report import read_failures

    assert sum(read_failures(files.failures).values()) == 2  # the final failures, written beside the final stats


def test_channel_options_open_one_connection_per_channel():
    """Each Locust user's channel has its own connection (gRPC shares one per process by default)."""
    from concurrent import futures

    from loadtest.protocol import CHANNEL_OPTIONS

    def peer(_request: bytes, context: grpc.ServicerContext) -> bytes:
        return context.peer().encode()  # ipv4:127.0.0.1:<the client's port>: one per connection

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
        "probe.Probe", {"Peer": grpc.unary_unary_rpc_method_handler(peer)}),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        channels = [grpc.insecure_channel(f"127.0.0.1:{port}", options=CHANNEL_OPTIONS) for _ in range(2)]
        peers = {channel.unary_unary("/probe.Probe/Peer")(b"", timeout=10) for channel in channels for _ in range(2)}
        for channel in channels:
            channel.close()
    finally:
        server.stop(None)
    assert len(peers) == 2, peers  # two channels, two connections (each reused by its second call)


def test_locusts_percentile_is_the_slowest_call_up_to_its_own_sample_count():
    """Locust returns the slowest response while n - 1 <= int(n x p) (calculate_response_time_percentile), one sample
    later than numpy's linear percentile leaves the largest: by hand, p95 at n = 20: int(19.0) = 19 >= 19, the
    slowest; at n = 21: int(19.95) = 19 < 20, not. p50 at n = 2: int(1.0) = 1 >= 1; at n = 3: int(1.5) = 1 < 2."""
    from dermassist.base.percentiles import min_samples
    from loadtest.report import locust_min_samples

    assert [locust_min_samples(p) for p in (50, 95, 99)] == [3, 21, 101]
    assert [locust_min_samples(p) - min_samples(p) for p in (50, 95, 99)] == [1, 1, 1]
