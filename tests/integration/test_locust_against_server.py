"""A short headless Locust run against the session's real embedded Triton."""
from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from tritonclient.grpc import service_pb2_grpc

from dermassist.base.corpus import bad_inputs
from loadtest.config import RunConfig, ScenarioConfig
from loadtest.protocol import CHANNEL_OPTIONS, infer_request, response_rows
from loadtest.runner import run_locust

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_raw_grpc_request_is_served_and_bad_inputs_are_invalid_argument(triton_server, ham_jpeg: bytes):
    with grpc.insecure_channel(triton_server.config.grpc_address, options=CHANNEL_OPTIONS) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        response = stub.ModelInfer(infer_request([ham_jpeg, ham_jpeg]), timeout=60)
        assert response_rows(response) == 2
        for kind, blob in bad_inputs(ham_jpeg).items():
            with pytest.raises(grpc.RpcError) as info:
                stub.ModelInfer(infer_request([blob]), timeout=60)
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, kind


def test_headless_locust_reports_no_unexpected_failures(triton_server, shared_data: Path, tmp_path_factory):
    reports = tmp_path_factory.mktemp("loadtest_reports")
    run = RunConfig(users=4, spawn_rate=4, run_time_s=12, report_dir=reports, host=triton_server.config.grpc_address)
    # A large bad share and small batches so a 12 s run on two shared cores surely sends bad inputs.
    scenario = ScenarioConfig(bad_share=0.25, batch_size=2, per_size=1,
                              image_cache=tmp_path_factory.mktemp("loadtest_images"))
    summary, files = run_locust(run, scenario, run.host)
    assert files.html.is_file() and files.html.stat().st_size > 0
    assert summary.total.requests > 0
    assert summary.unexpected_failures == 0, files.log.read_text()[-3000:]
    assert set(summary.rows) <= {"single", "batch2", "bad_input:rejected"}
    bad = summary.rows["bad_input:rejected"]
    assert bad.requests > 0 and bad.failures == 0
    assert sum(r.requests for n, r in summary.rows.items() if n != "bad_input:rejected") > 0


def test_locust_run_with_a_stub_killed_mid_run_has_no_unexpected_failure(tiny_repository: Path, shared_data: Path,
                                                                         tmp_path_factory, monkeypatch):
    """``python -m loadtest.run --fault kill``: the embedded server behind the guard heals; Locust's retries hide it
    from the failure count, and the summary counts them."""
    import json

    from dermassist.base.server_config import ServerConfig
    from dermassist.guard.config import GuardConfig
    from loadtest.protocol import retryable
    from loadtest.run import main

    reports = tmp_path_factory.mktemp("loadtest_fault")
    monkeypatch.setenv("LOADTEST_IMAGE_CACHE", str(tmp_path_factory.mktemp("loadtest_fault_images")))
    monkeypatch.setenv("LOADTEST_PER_SIZE", "1")
    code = main(["--repository", str(tiny_repository), "-u", "3", "-r", "3", "-t", "20", "--batch-size", "2",
                 "--bad-share", "0.1", "--fault", "kill", "--fault-model", "lesion_crop", "--fault-at", "6",
                 # the tiny test models are untrained: their answers may be NOT ASSESSABLE; this run is about the fault
                 "--max-not-assessable-share", "1", "--report-dir", str(reports)])
    summary = json.loads((reports / "summary.json").read_text())
    assert code == 0, (reports / "locust.log").read_text()[-3000:]
    assert summary["unexpected_failures"] == 0 and summary["total"]["requests"] > 0
    fault = summary["fault"]
    assert fault["injected"] and fault["recoveries"], fault
    # found and healed within the guard's own bounds (its settings, not a speed target: `make bench` has those): a
    # killed stub is seen by the next scan, else by the next canary; a recovery ends within its longest normal course
    guard, server = GuardConfig(), ServerConfig(repository=tiny_repository)
    recovery = fault["recoveries"][0]
    assert recovery["detected_after_s"] <= guard.canary_interval_s + guard.canary_timeout_s, recovery
    assert recovery["ready_after_s"] <= guard.longest_recovery_s(server.startup_timeout_s), recovery
    assert summary["server"]["success"] > 0  # read through the front with the admin key
    audit = [json.loads(line) for line in (reports / "audit.jsonl").read_text().splitlines()]
    assert len(audit) >= summary["total"]["requests"]
    answers = summary["total_answers"]
    assert answers["images"] > 0 and answers["not_assessable_share"] is not None and answers["refer_share"] is not None
    # every call the front refused as retryable was sent again (no call failed), and each retry is counted
    refused = [a for a in audit if a.get("request_id") and retryable(a["status"], a.get("error") or "")]
    assert answers["retried"] >= len(refused), (answers, refused)
    assert answers["retried"] == sum(row["retried"] for row in summary["answers"].values())
