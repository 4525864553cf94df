"""Every answer names the release and build that made it, and so does its audit line (an integrator's audit trail
could only record version "1", which every export serves)."""
from __future__ import annotations

import json
from pathlib import Path

import grpc
import pytest
from tritonclient.grpc import service_pb2, service_pb2_grpc

from dermassist.base.repository import (
    RELEASE_NAME,
    RELEASE_STAMP,
    UNNAMED,
    mark_not_release,
    name_release,
    served_build,
    served_release,
    stage_repository,
)
from dermassist.guard.front import identity_parameters
from preprocess.contract import BUILD_PARAMETER, RELEASE_PARAMETER

from .loopback import front_before_stand_in
from .test_front_requests import image_request


def test_the_release_is_the_exported_name_or_the_imported_origin(tmp_path: Path) -> None:
    assert served_release(tmp_path) == UNNAMED  # nothing says
    (tmp_path / RELEASE_STAMP).write_text("ab1f885340766aae\n")
    assert served_release(tmp_path) == UNNAMED  # a fingerprint of files' dates names no release
    name_release(tmp_path, "dermassist-real-2026.12", "1")
    assert served_release(tmp_path) == "dermassist-real-2026.12 version 1"
    mark_not_release(tmp_path, "classifier stage runs/x")
    assert served_release(tmp_path) == ("imported: segmenter of release dermassist-real-2026.12 version 1; classifier "
                                        "stage runs/x") and not (tmp_path / RELEASE_NAME).exists()


def test_the_stamp_names_every_models_origin_when_one_is_imported_after_the_other(tmp_path: Path) -> None:
    """The stamp named the last file imported only: a segmenter imported then a classifier read 'imported: torch ...',
    and a segmenter imported into a release's repository hid that the classifier was still the release's."""
    from dermassist.base.repository import imported_models, release_models

    assert imported_models(tmp_path) == {} and release_models(tmp_path) == ("segmenter", "classifier")
    name_release(tmp_path, "dermassist-real-2026.12", "1")
    (tmp_path / RELEASE_STAMP).write_text("ab1f885340766aae\n")
    mark_not_release(tmp_path, "keras /runs/a/segmenter.keras")
    assert imported_models(tmp_path) == {"segmenter": "keras /runs/a/segmenter.keras",
                                         "classifier": "classifier of release dermassist-real-2026.12 version 1"}
    assert release_models(tmp_path) == ("classifier",)
    mark_not_release(tmp_path, "torch /runs/b/classifier_resnet18.pt")
    assert served_release(tmp_path) == "imported: keras /runs/a/segmenter.keras; torch /runs/b/classifier_resnet18.pt"
    assert release_models(tmp_path) == ()
    mark_not_release(tmp_path, "segmenter stage /runs/c")
    assert imported_models(tmp_path)["segmenter"] == "segmenter stage /runs/c"
    assert imported_models(tmp_path)["classifier"] == "torch /runs/b/classifier_resnet18.pt"


def test_the_build_digest_changes_with_any_served_byte_and_not_with_caches_or_the_stamp(tmp_path: Path) -> None:
    repository = stage_repository(tmp_path / "repository")
    tuned = repository / "triage" / "1" / "tuned.json"
    tuned.write_text('{"refer_threshold": 0.066}')
    first = served_build(repository)
    assert first.startswith("sha256:") and len(first) == len("sha256:") + 16
    (repository / RELEASE_STAMP).write_text("another stamp\n")
    (repository / "triage" / "1" / "__pycache__").mkdir()
    (repository / "triage" / "1" / "__pycache__" / "model.cpython-311.pyc").write_bytes(b"cache")
    assert served_build(repository) == first  # what decides no answer is left out
    tuned.write_text('{"refer_threshold": 0.067}')  # one tuned value
    assert served_build(repository) != first
    tuned.write_text('{"refer_threshold": 0.066}')
    assert served_build(repository) == first  # content, not dates
    tuned.rename(repository / "triage" / "1" / "tuned2.json")
    assert served_build(repository) != first  # a file's name counts too


def test_identity_parameters_merge_into_an_answer_without_decoding_it() -> None:
    answer = service_pb2.ModelInferResponse(model_name="dermassist", model_version="1", id="r-1")
    answer.parameters["sequence_id"].int64_param = 7
    raw = answer.SerializeToString() + identity_parameters({"release": "dermassist-real-2026.12 version 1",
                                                           "build": "sha256:0123456789abcdef"})
    merged = service_pb2.ModelInferResponse.FromString(raw)
    assert (merged.model_name, merged.id, merged.parameters["sequence_id"].int64_param) == ("dermassist", "r-1", 7)
    assert merged.parameters[RELEASE_PARAMETER].string_param == "dermassist-real-2026.12 version 1"
    assert merged.parameters[BUILD_PARAMETER].string_param == "sha256:0123456789abcdef"
    assert identity_parameters({}) == b""  # not read yet: the answer goes as it came


def test_an_answer_and_its_audit_line_name_the_release_and_build(tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    with front_before_stand_in(audit) as served:
        served.front.guard.identity = {"release": "dermassist-real-2026.12 version 1", "build": "sha256:00112233aabbccdd"}
        with grpc.insecure_channel(served.address) as channel:
            answer = service_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(image_request([1, 1]), timeout=10)
    assert answer.parameters[RELEASE_PARAMETER].string_param == "dermassist-real-2026.12 version 1"
    assert answer.parameters[BUILD_PARAMETER].string_param == "sha256:00112233aabbccdd"
    (line,) = [json.loads(text) for text in audit.read_text().splitlines()]
    assert (line["release"], line["build"]) == ("dermassist-real-2026.12 version 1", "sha256:00112233aabbccdd")


def _ready_guard(repository: Path):
    """A Guard whose _mark_ready runs against stand-ins (no Triton): what the identity is read from is the point."""
    import asyncio
    import os
    import types

    from dermassist.guard.guard import Guard

    class Ready:
        ready = False

        def set_ready(self) -> None:
            self.ready = True

    async def index(*_a, **_k):
        return types.SimpleNamespace(models=[])

    guard = Guard.__new__(Guard)
    guard.server = types.SimpleNamespace(pid=os.getpid())
    guard.triton = types.SimpleNamespace(RepositoryIndex=index)
    guard.triton_config = types.SimpleNamespace(repository=repository, grpc_admin_headers={})
    guard.source, guard.copy = repository, None  # a tritonserver it was given, reading the folder itself
    guard.identity, guard._identity_due, guard.versions, guard._served = {}, True, {}, None
    guard._identity_generation, guard._identity_reads, guard._identity_lost = 0, set(), False
    guard.model_loads, guard._copy_changing = asyncio.Lock(), False  # no admin load under way
    guard._planned, guard._planned_until = 0, 0.0
    guard.recoveries, guard._been_ready, guard.readiness = [], False, Ready()
    return guard


def test_the_build_is_read_when_models_were_loaded_not_at_every_return_of_readiness(tmp_path: Path) -> None:
    """It was read at every not-ready -> ready turn: after an audit outage that ended, answers of the unchanged
    in-memory models named the build of files rewritten meanwhile (a review's finding)."""
    import asyncio

    repository = stage_repository(tmp_path / "repository")
    tuned = repository / "triage" / "1" / "tuned.json"
    tuned.write_text('{"refer_threshold": 0.066}')
    guard = _ready_guard(repository)
    asyncio.run(guard._mark_ready())
    first = guard.identity["build"]
    tuned.write_text('{"refer_threshold": 0.5}')  # the folder rewritten while serving; nothing reloaded
    guard.readiness.ready = False
    asyncio.run(guard._mark_ready())  # readiness back after an audit outage
    assert guard.identity["build"] == first
    guard.models_loaded()  # a restart, a reload or an admin load
    asyncio.run(guard._mark_ready())
    assert guard.identity["build"] == served_build(repository) != first


def test_a_build_that_cannot_be_read_leaves_the_identity_unknown_and_readiness_reached(tmp_path: Path,
                                                                                      monkeypatch) -> None:
    """A stray file name that is not UTF-8 raised out of _mark_ready: the service never became ready."""
    import asyncio

    import dermassist.guard.guard as guard_module

    guard = _ready_guard(stage_repository(tmp_path / "repository"))
    guard.identity = {"release": "old", "build": "sha256:0000000000000000"}

    def broken(_repository: Path) -> tuple[str, str]:
        raise UnicodeEncodeError("utf-8", "\udce9", 0, 1, "surrogates not allowed")

    monkeypatch.setattr(guard_module, "served_identity", broken)
    asyncio.run(guard._mark_ready())
    assert guard.readiness.ready and guard.identity == {}  # unknown, never the stale one


def test_the_build_reads_any_file_name_and_follows_folder_links(tmp_path: Path) -> None:
    import os
    import shutil

    repository = stage_repository(tmp_path / "repository")
    first = served_build(repository)
    stray = repository / "triage" / os.fsdecode(b"notes-\xe9t\xe9.txt")  # a Latin-1 name from a zip
    stray.write_bytes(b"notes")
    assert served_build(repository) not in (first, None)
    stray.unlink()
    weights = tmp_path / "weights_a"
    shutil.move(str(repository / "triage" / "1"), weights)
    (repository / "triage" / "1").symlink_to(weights, target_is_directory=True)
    assert served_build(repository) == first  # the same files through a link
    (weights / "tuned.json").write_text('{"refer_threshold": 0.9}')
    assert served_build(repository) != first  # a change behind the link counts (rglob did not follow it)
    (weights / "loop").symlink_to(repository / "triage", target_is_directory=True)
    assert served_build(repository).startswith("sha256:")  # a link back up the tree is walked once


def test_a_release_name_in_another_encoding_is_read_not_raised(tmp_path: Path) -> None:
    (tmp_path / RELEASE_NAME).write_bytes("dermassist-clinique-été version 2\n".encode("latin-1"))
    assert served_release(tmp_path).startswith("dermassist-clinique-") and "version 2" in served_release(tmp_path)
    name_release(tmp_path, "dermassist-real-2026.12", "1")
    (tmp_path / RELEASE_NAME).chmod(0o444)
    name_release(tmp_path, "dermassist-real-2026.12", "1")  # already named: a read-only file is not written
    assert served_release(tmp_path) == "dermassist-real-2026.12 version 1"


def test_a_read_overtaken_by_a_newer_change_is_dropped_and_an_admin_reads_survives_its_call(tmp_path: Path,
                                                                                        monkeypatch) -> None:
    """Two reads racing (after a recovery and after an admin load) kept whichever finished last, even the older; and an
    admin call cancelled while its read ran left the old build on every answer (a review's findings)."""
    import asyncio
    import threading

    import dermassist.guard.guard as guard_module

    repository = stage_repository(tmp_path / "repository")
    guard = _ready_guard(repository)
    release = threading.Event()
    calls: list[int] = []

    def slow_then_fast(_repository: Path) -> tuple[str, str]:
        calls.append(len(calls))
        if len(calls) == 1:
            release.wait(5)  # the first read is slow: the models change meanwhile
            return "old", "sha256:old0000000000000"
        return "new", "sha256:new0000000000000"

    monkeypatch.setattr(guard_module, "served_identity", slow_then_fast)

    async def scenario() -> None:
        first = asyncio.create_task(guard.read_identity())
        await asyncio.sleep(0.05)
        guard.models_loaded()  # an admin load: no build named meanwhile
        assert guard.identity == {}
        guard.read_identity_soon()  # its own task: a cancelled admin call does not cut it
        await asyncio.sleep(0.05)
        release.set()
        await first
        await asyncio.gather(*guard._identity_reads)

    asyncio.run(scenario())
    assert guard.identity == {"release": "new", "build": "sha256:new0000000000000"}  # the older read was dropped


def test_a_failed_admin_load_names_again_what_was_served(tmp_path: Path) -> None:
    """A load Triton refused (model control 'none') or failed to do leaves what it served in place: the answers named no
    build from then on (a CI run of the guard's integration test)."""
    guard = _ready_guard(stage_repository(tmp_path / "repository"))
    guard.identity, guard._identity_due = {"release": "r", "build": "sha256:1111222233334444"}, False
    before = guard.models_changing()
    assert guard.identity == {} and guard._identity_due
    guard.models_unchanged(before)
    assert guard.identity == {"release": "r", "build": "sha256:1111222233334444"} and not guard._identity_due
    before = guard.models_changing()
    guard.models_loaded()  # a recovery's restart came meanwhile: what it loads is read, not the old one named
    guard.models_unchanged(before)
    assert guard.identity == {} and guard._identity_due


@pytest.mark.parametrize("module", ["steps.py", "frameworks.py"])
def test_the_build_digest_covers_the_code_that_runs_the_steps_models(tmp_path: Path, monkeypatch, module: str) -> None:
    """dermassist.base.steps calls the served steps' models, and frameworks loads them (the SavedModel signature):
    a change there changes the answers, so the build too."""
    import dermassist.base.repository as repository_module

    repository = stage_repository(tmp_path / "repository")
    first = served_build(repository)
    base = tmp_path / "base"
    base.mkdir()
    (base / "repository.py").write_text("")
    for name in repository_module.STEP_CODE:
        (base / name).write_bytes(Path(repository_module.__file__).with_name(name).read_bytes())
    monkeypatch.setattr(repository_module, "__file__", str(base / "repository.py"))
    assert served_build(repository) == first  # the same files, read from elsewhere
    (base / module).write_text((base / module).read_text() + "\n# changed\n")
    assert served_build(repository) != first


def test_an_origin_holding_a_semicolon_or_the_words_of_release_is_kept_whole(tmp_path: Path) -> None:
    """The stamp was split on ';': '/data/site a; v2/classifier_resnet18.pt' came back cut at the next import."""
    from dermassist.base.repository import imported_models, release_models

    mark_not_release(tmp_path, "torch /data/site a; v2/classifier_resnet18.pt")
    mark_not_release(tmp_path, "keras /data/x of release y/segmenter.keras")
    assert imported_models(tmp_path) == {"segmenter": "keras /data/x of release y/segmenter.keras",
                                         "classifier": "torch /data/site a; v2/classifier_resnet18.pt"}
    assert release_models(tmp_path) == ()
    (tmp_path / RELEASE_STAMP).write_text("ab1f885340766aae\n")  # `dermassist models --force`: the release again
    assert imported_models(tmp_path) == {} and release_models(tmp_path) == ("segmenter", "classifier")
