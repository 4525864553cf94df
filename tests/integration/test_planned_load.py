"""An admin load through the front is a planned change: Triton stops the replaced instances' stubs, and the guard had
taken each exit for a pipeline fault (reloads, a restart of tritonserver, an UNAVAILABLE to a client; upgrade audit,
H4). A real tritonserver, its own copy of the tiny models."""
from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient

from dermassist.base.server_config import GRPC_ADMIN_HEADER
from dermassist.guard.background import BackgroundGuard
from dermassist.guard.config import GuardConfig
from preprocess.contract import CROP_MODEL, ENSEMBLE_NAME
from tests.support.guard import public_config

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _infer(client: grpcclient.InferenceServerClient, picture: bytes) -> np.ndarray:
    tensor = grpcclient.InferInput("IMAGE", [1, 1], "BYTES")
    tensor.set_data_from_numpy(np.array([[picture]], dtype=object))
    return client.infer(ENSEMBLE_NAME, [tensor], client_timeout=60).as_numpy("PROBABILITIES")


def test_loading_the_ensemble_after_a_step_changed_on_disk_is_no_fault(
        tiny_repository: Path, tmp_path: Path, ham_jpeg: bytes, caplog: pytest.LogCaptureFixture) -> None:
    repository = tmp_path / "repository"
    shutil.copytree(tiny_repository, repository)
    config = GuardConfig(audit_log=str(tmp_path / "audit.jsonl"), canary_interval_s=1.0)
    with caplog.at_level(logging.INFO, logger="dermassist.guard"), \
            BackgroundGuard(public_config(repository), config) as guard:
        client = grpcclient.InferenceServerClient(guard.grpc_address)
        try:
            before = _infer(client, ham_jpeg)
            step = repository / CROP_MODEL / "1" / "model.py"
            step.write_text(step.read_text() + "\n# a comment: the step changed on disk\n")  # the load replaces it
            later = time.time() + 5
            pids = {s.pid for s in guard.guard.stubs if s.model == CROP_MODEL}
            client.load_model(ENSEMBLE_NAME, headers={GRPC_ADMIN_HEADER: guard.guard.admin_key})
            deadline = time.monotonic() + 30
            while {s.pid for s in guard.guard.stubs if s.model == CROP_MODEL} & pids:  # the old stub replaced
                assert time.monotonic() < deadline, "the replaced step's stub was not seen replaced within 30 s"
                time.sleep(0.2)
            time.sleep(3.0)  # canaries run, the stub watcher scans
            after = _infer(client, ham_jpeg)
            assert guard.guard.repository_changed == []  # the files now on disk are those loaded
            other = repository / "triage" / "1" / "model.py"
            os.utime(other, (later + 5, later + 5))  # changed on disk, not loaded: told, not served
            deadline = time.monotonic() + 15
            while guard.guard.repository_changed != ["triage/1/model.py"]:
                assert time.monotonic() < deadline, guard.guard.repository_changed
                time.sleep(0.5)
        finally:
            client.close()
        recoveries = list(guard.guard.recoveries)
    assert recoveries == [], [r.reason for r in recoveries]
    faults = [r.getMessage() for r in caplog.records if "pipeline fault" in r.getMessage()]
    assert faults == []
    assert any("changed on disk since its models were loaded (triage/1/model.py)" in r.getMessage()
               for r in caplog.records if r.levelname == "WARNING")
    np.testing.assert_allclose(after, before, atol=1e-6)
