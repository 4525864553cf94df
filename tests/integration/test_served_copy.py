"""The guard's tritonserver serves a copy of the repository (upgrade audit, H1): a heal after the folder changed loads
what was loaded before, not the files now there, and the answers name the build of the models that made them; an admin
load of the ensemble takes the change in, a change that fails the folder's seal is refused, and a load Triton fails
leaves the models served before. A real tritonserver, the tiny models."""
from __future__ import annotations

import json
import os
import shutil
import signal
import time
from pathlib import Path

import grpc
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from dermassist.base.repository import SEAL_FILE, seal, served_build
from dermassist.base.server_config import GRPC_ADMIN_HEADER
from dermassist.guard.background import BackgroundGuard
from dermassist.guard.config import GuardConfig
from preprocess.contract import BUILD_PARAMETER, ENSEMBLE_NAME, TRIAGE_MODEL
from tests.support.guard import public_config

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TUNED = Path(TRIAGE_MODEL) / "1" / "tuned.json"


def _triage(repository: Path, threshold: float, sealed: bool = True) -> None:
    """Refer at or above ``threshold``, whatever the image's quality: a value that flips REFER."""
    (repository / TUNED).write_text(json.dumps({"values": {"refer_threshold": threshold,
                                                            "refer_when_not_assessable": False}}))
    if sealed:
        seal(repository)


def _answer(client: grpcclient.InferenceServerClient, picture: bytes) -> tuple[bool, float, str]:
    """REFER, REFER_SCORE and the build the answer names."""
    tensor = grpcclient.InferInput("IMAGE", [1, 1], "BYTES")
    tensor.set_data_from_numpy(np.array([[picture]], dtype=object))
    result = client.infer(ENSEMBLE_NAME, [tensor], client_timeout=60)
    build = result.get_response().parameters[BUILD_PARAMETER].string_param
    return bool(result.as_numpy("REFER")[0, 0]), float(result.as_numpy("REFER_SCORE")[0, 0]), build


def _wait(condition, what: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.3)


def test_a_heal_serves_what_was_loaded_and_only_an_admin_load_takes_a_change_in(
        tiny_repository: Path, tmp_path: Path, ham_jpeg: bytes) -> None:
    repository = tmp_path / "repository"
    shutil.copytree(tiny_repository, repository)
    _triage(repository, 0.999)  # REFER false
    loaded_build = served_build(repository)
    config = GuardConfig(audit_log=str(tmp_path / "audit.jsonl"), canary_interval_s=1.0)
    with BackgroundGuard(public_config(repository), config) as background:
        guard = background.guard
        assert guard.copy is not None and guard.triton_config.repository == guard.copy.repository
        client = grpcclient.InferenceServerClient(background.grpc_address)
        admin = {GRPC_ADMIN_HEADER: guard.admin_key}
        try:
            refer, score, build = _answer(client, ham_jpeg)
            assert (refer, build) == (False, loaded_build) and score < 0.999

            # a load that changes nothing replaces no step (a stub's byte-code written into the copy had made Triton
            # take every step for changed)
            stubs = {s.pid for s in guard.stubs}
            client.load_model(ENSEMBLE_NAME, headers=admin)
            time.sleep(2.0)  # the guard's stub watch scans
            assert {s.pid for s in guard.stubs} == stubs and guard.recoveries == []

            # the folder changes on disk (sealed anew), then the triage step's stub dies: the heal loads the copy
            _triage(repository, 0.001)
            changed_build = served_build(repository)
            assert score >= 0.001 and changed_build != loaded_build
            _wait(lambda: guard.repository_changed == [str(TUNED)], "the change on disk was not told")
            (stub,) = [s for s in guard.stubs if s.model == TRIAGE_MODEL]
            os.kill(stub.pid, signal.SIGKILL)
            _wait(lambda: len(guard.recoveries) == 1 and guard.recoveries[0].ready_at is not None
                  and guard.readiness.ready and guard.identity, "the killed stub was not healed")
            assert _answer(client, ham_jpeg)[::2] == (False, loaded_build)  # before: REFER true under the new build

            # an admin load of the ensemble takes the change in
            client.load_model(ENSEMBLE_NAME, headers=admin)
            _wait(lambda: guard.identity.get("build") == changed_build, "the load's build was not read")
            assert _answer(client, ham_jpeg)[::2] == (True, changed_build)
            _wait(lambda: guard.repository_changed == [], "the loaded change is still told as one")

            # a change the seal does not cover is refused, nothing loaded
            _triage(repository, 0.999, sealed=False)
            with pytest.raises(InferenceServerException) as refused:
                client.load_model(ENSEMBLE_NAME, headers=admin)
            assert refused.value.status() == str(grpc.StatusCode.FAILED_PRECONDITION)
            assert f"model files of {repository} are not those written there" in refused.value.message()
            assert "triage/1/tuned.json has changed" in refused.value.message()
            assert "nothing was loaded" in refused.value.message()
            assert _answer(client, ham_jpeg)[::2] == (True, changed_build)

            # a tuned value its step refuses (in an unsealed folder: nothing else looks at it) is refused too
            (repository / SEAL_FILE).unlink()
            (repository / TUNED).write_text(json.dumps({"values": {"refer_threshold": 2.0}}))
            with pytest.raises(InferenceServerException) as refused:
                client.load_model(ENSEMBLE_NAME, headers=admin)
            assert refused.value.status() == str(grpc.StatusCode.FAILED_PRECONDITION)
            assert f"model repository {repository} cannot give its steps their tuned values" in refused.value.message()

            # a step Triton cannot load: the models served before are loaded again and named
            _triage(repository, 0.5)
            step = repository / TRIAGE_MODEL / "1" / "model.py"
            step.write_text("raise RuntimeError('a step that does not load')\n" + step.read_text())
            with pytest.raises(InferenceServerException) as failed:
                client.load_model(ENSEMBLE_NAME, headers=admin)
            assert "the models served before are served again" in failed.value.message()
            _wait(lambda: guard.readiness.ready and guard.identity.get("build") == changed_build,
                  "the models served before were not named again")
            assert _answer(client, ham_jpeg)[::2] == (True, changed_build)
            assert json.loads((guard.copy.repository / TUNED).read_text())["values"]["refer_threshold"] == 0.001
            assert "a step that does not load" not in (guard.copy.repository / TRIAGE_MODEL / "1" / "model.py").read_text()
            assert guard.recoveries[1:] == []  # a planned change: no fault healed
        finally:
            client.close()
        copy_root = guard.copy.root
    assert not copy_root.exists()  # removed with the guard
