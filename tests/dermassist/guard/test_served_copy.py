"""The guard serves a private copy of the repository (upgrade audit, H1): made at start, made again at an admin load of
the ensemble, checked against the folder's seal, and the one served before put back when a load fails."""
from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import grpc
import pytest

import dermassist.guard.served_copy as served_copy
from dermassist.base.repository import SEAL_FILE, repository_marks, seal, served_build, served_release
from dermassist.base.server import remove_orphans
from dermassist.guard.served_copy import CopyError, ServedCopy

TUNED = Path("triage") / "1" / "tuned.json"


def _tuned(repository: Path, threshold: float) -> None:
    (repository / TUNED).write_text(json.dumps({"values": {"refer_threshold": threshold}}))


@pytest.fixture()
def source(tiny_repository: Path, tmp_path: Path) -> Path:
    """A sealed, named copy of the tiny models, one stray folder beside them, one version folder a link."""
    repository = tmp_path / "source"
    shutil.copytree(tiny_repository, repository)
    _tuned(repository, 0.3)
    (repository / ".release-name").write_text("tiny version 1\n")
    (repository / "backups" / "old").mkdir(parents=True)  # not a model DermAssist serves
    (repository / "backups" / "old" / "big.bin").write_bytes(b"x" * 1000)
    crop = repository / "lesion_crop"
    shutil.move(crop / "1", tmp_path / "crop_version")
    (crop / "1").symlink_to(tmp_path / "crop_version")
    seal(repository)
    return repository


def test_the_copy_holds_the_served_files_themselves_and_names_the_same_release_and_build(source: Path,
                                                                                       tmp_path: Path) -> None:
    copy = ServedCopy(source, parent=tmp_path)
    marks = copy.fill()
    assert marks == repository_marks(source)
    served = copy.repository
    assert sorted(p.name for p in served.iterdir()) == sorted(
        [".artifacts.sha256", ".release-name", "dermassist", "lesion_classifier", "lesion_crop", "lesion_segmenter",
         "prepare", "triage"])  # no stray folder
    assert not (served / "lesion_crop" / "1").is_symlink() and (served / "lesion_crop" / "1" / "model.py").is_file()
    assert (served_release(served), served_build(served)) == ("tiny version 1", served_build(source))
    copy.close()
    assert not copy.root.exists()


def test_a_read_only_release_gives_a_copy_the_guard_can_change_and_remove(source: Path, tmp_path: Path) -> None:
    import stat

    for folder, _, _ in os.walk(source):  # made read-only, as a release never changed in place may be
        os.chmod(folder, 0o555)
    try:
        copy = ServedCopy(source, parent=tmp_path)
        copy.fill()
        modes = {os.stat(folder).st_mode & stat.S_IRWXU for folder, _, _ in os.walk(copy.repository)}
        assert modes == {stat.S_IRWXU}
    finally:
        for folder, _, _ in os.walk(source):
            os.chmod(folder, 0o755)
    copy.close()
    assert not copy.root.exists()


def test_a_source_that_fails_its_seal_or_changes_while_copied_is_refused_naming_it(source: Path, tmp_path: Path,
                                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    _tuned(source, 0.4)  # changed after the seal was written
    copy = ServedCopy(source, parent=tmp_path)
    with pytest.raises(CopyError, match=rf"model files of {source} are not those written there .*triage/1/tuned.json "
                                        "has changed"):
        copy.fill()
    seal(source)
    real = served_copy.copy_repository

    def copy_while_written(src: Path, destination: Path) -> None:
        real(src, destination)
        _tuned(src, 0.5)  # an export still writing

    monkeypatch.setattr(served_copy, "copy_repository", copy_while_written)
    with pytest.raises(CopyError, match=rf"model repository {source} changed while it was copied to be served "
                                        r"\(triage/1/tuned.json changed; \.artifacts\.sha256 says"):
        copy.fill()
    copy.close()


def test_an_update_replaces_only_what_changed_and_a_restore_puts_it_back_newer(source: Path, tmp_path: Path) -> None:
    copy = ServedCopy(source, parent=tmp_path)
    copy.fill()
    served = copy.repository
    before_build = served_build(served)
    classifier = (served / "lesion_classifier").stat().st_ino
    assert copy.update()[0] == []  # nothing changed: nothing replaced
    _tuned(source, 0.7)
    seal(source)
    started = time.time()
    changed, marks = copy.update()
    assert changed == [SEAL_FILE, "triage"]
    assert marks == repository_marks(source)
    assert (served / "lesion_classifier").stat().st_ino == classifier  # kept: Triton does not load it again
    assert json.loads((served / TUNED).read_text())["values"]["refer_threshold"] == 0.7
    assert os.stat(served / TUNED).st_mtime >= started - 1  # newer: Triton takes the step for a changed one
    assert served_build(served) == served_build(source) != before_build
    restored_at = time.time()
    assert copy.restore() == [SEAL_FILE, "triage"]
    assert json.loads((served / TUNED).read_text())["values"]["refer_threshold"] == 0.3
    assert os.stat(served / TUNED).st_mtime >= restored_at - 1  # newer again: loaded again
    assert served_build(served) == before_build
    assert not (copy.root / "previous").exists()
    changed, _ = copy.update()
    copy.keep()
    assert changed == [SEAL_FILE, "triage"] and not (copy.root / "previous").exists()
    assert served_build(served) == served_build(source)
    copy.close()


def test_an_update_that_fails_changes_nothing_served(source: Path, tmp_path: Path) -> None:
    copy = ServedCopy(source, parent=tmp_path)
    copy.fill()
    build = served_build(copy.repository)
    _tuned(source, 0.8)  # no new seal: a copy over the release's files, or a damaged one
    with pytest.raises(CopyError, match="triage/1/tuned.json has changed"):
        copy.update()
    assert served_build(copy.repository) == build
    assert sorted(p.name for p in copy.root.iterdir()) == ["owner.lock", "repository", "shm-prefix"]
    copy.close()


def test_a_damaged_copy_is_told_as_the_copy_with_what_to_do(source: Path, tmp_path: Path) -> None:
    copy = ServedCopy(source, parent=tmp_path)
    copy.fill()
    copy.check(RuntimeError)  # as made
    (copy.repository / TUNED).unlink()  # a cleaner of the temporary folder
    with pytest.raises(RuntimeError, match=rf"the copy of model repository {source} that is served \({copy.repository}\) "
                                           r"lost or changed files since it was made .*restart serve"):
        copy.check(RuntimeError)
    copy.close()


def test_the_copy_of_a_guard_that_is_gone_is_removed_by_a_later_start(source: Path, tmp_path: Path) -> None:
    live = ServedCopy(source, parent=tmp_path)
    gone = ServedCopy(source, parent=tmp_path)
    gone.fill()
    os.close(gone._lock)  # its guard was killed: no one holds its lock
    gone._closer.detach()
    removed = remove_orphans(shm_dir=tmp_path / "no-shm", tmp_dir=tmp_path)
    assert removed == [gone.root]
    assert live.root.exists()
    live.close()


def _loading_guard(source: Path, tmp_path: Path, failing: set[str]):
    """A Guard serving a copy of ``source`` whose Triton is a stand-in: it records each model loaded and fails the
    first load of each model in ``failing`` (``"*"``: every load)."""
    import asyncio
    from types import SimpleNamespace

    from dermassist.guard.guard import Guard

    guard = Guard.__new__(Guard)
    guard.source, guard.copy = source, ServedCopy(source, parent=tmp_path)
    guard._source_marks = guard._loaded_marks = guard.copy.fill()
    guard.triton_config = SimpleNamespace(repository=guard.copy.repository, grpc_admin_headers={}, startup_timeout_s=5)
    guard.model_loads, guard._suspect = asyncio.Lock(), asyncio.Event()
    guard.identity = {"release": served_release(source), "build": served_build(source)}
    guard._identity_due, guard._identity_generation, guard._identity_lost = False, 0, False
    guard._planned, guard._planned_until, guard.repository_changed = 0, 0.0, []
    loaded: list[str] = []
    named: list[dict[str, str]] = []  # the identity the answers name while each model loads

    async def load(request, metadata, timeout):
        loaded.append(request.model_name)
        named.append(dict(guard.identity))
        if request.model_name in failing or "*" in failing:
            failing.discard(request.model_name)  # the version it had served loads again
            raise grpc.aio.AioRpcError(grpc.StatusCode.INTERNAL, grpc.aio.Metadata(), grpc.aio.Metadata(),
                                       details=f"failed to load '{request.model_name}'")
        return "loaded"

    guard.triton = SimpleNamespace(RepositoryModelLoad=load)
    return guard, loaded, named


def _ensemble_load(guard):
    from tritonclient.grpc import service_pb2

    return lambda: guard.triton.RepositoryModelLoad(service_pb2.RepositoryModelLoadRequest(model_name="dermassist"),
                                                    metadata=(), timeout=5)


def test_a_load_loads_each_changed_step_then_the_ensemble_and_names_what_was_loaded(source: Path, tmp_path: Path) -> None:
    import asyncio

    guard, loaded, named = _loading_guard(source, tmp_path, failing=set())
    first = dict(guard.identity)
    assert asyncio.run(guard.load_copied(_ensemble_load(guard))) == "loaded"
    assert loaded == ["dermassist"] and named == [first]  # nothing changed: no step loaded, the build named throughout
    _tuned(source, 0.6)
    seal(source)
    loaded.clear()
    named.clear()
    asyncio.run(guard.load_copied(_ensemble_load(guard)))
    assert loaded == ["triage", "dermassist"]  # the step by itself: Triton's ensemble load hides a step's failure
    assert named == [{}, {}]  # no build named while Triton loads
    assert guard.identity == {"release": "tiny version 1", "build": served_build(source)} != first
    guard.copy.close()


def test_a_load_that_fails_puts_back_what_was_served_and_a_second_failure_names_no_build(source: Path,
                                                                                           tmp_path: Path) -> None:
    import asyncio

    from dermassist.guard.served_copy import LoadFailed

    guard, loaded, _ = _loading_guard(source, tmp_path, failing={"triage"})
    first = dict(guard.identity)
    _tuned(source, 0.6)
    seal(source)
    with pytest.raises(LoadFailed, match="INTERNAL: failed to load 'triage'") as failed:
        asyncio.run(guard.load_copied(_ensemble_load(guard)))
    assert failed.value.restored
    assert loaded == ["triage", "triage", "dermassist"]  # the new one failed; the one before loaded again
    assert guard.identity == first
    assert json.loads((guard.copy.repository / TUNED).read_text())["values"]["refer_threshold"] == 0.3
    guard.copy.close()

    guard, loaded, _ = _loading_guard(source, tmp_path, failing={"*"})
    _tuned(source, 0.65)
    seal(source)
    with pytest.raises(LoadFailed) as failed:
        asyncio.run(guard.load_copied(_ensemble_load(guard)))
    assert not failed.value.restored
    assert guard.identity == {} and guard._identity_lost
    asyncio.run(guard.read_identity())  # what Triton serves is not known: no build named until a restart
    assert guard.identity == {}
    guard.copy.close()


def test_a_load_of_a_folder_that_cannot_be_copied_changes_nothing(source: Path, tmp_path: Path) -> None:
    import asyncio

    guard, loaded, _ = _loading_guard(source, tmp_path, failing=set())
    first = dict(guard.identity)
    _tuned(source, 0.6)  # not sealed again
    with pytest.raises(CopyError):
        asyncio.run(guard.load_copied(_ensemble_load(guard)))
    assert loaded == [] and guard.identity == first and guard._planned == 0
    guard.copy.close()
