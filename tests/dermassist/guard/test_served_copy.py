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
    guard.model_loads, guard._suspect, guard._copy_changing = asyncio.Lock(), asyncio.Event(), False
    guard.config = SimpleNamespace(reload_timeout_s=10.0)
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


def test_a_load_that_changes_no_model_file_is_still_a_planned_change(source: Path, tmp_path: Path) -> None:
    """Triton decides what to reload from the folders' times: a step it took for changed (byte-code written beside its
    model.py) was replaced during a load that changed nothing, and its stubs' exits were healed as a fault (review 24,
    H1)."""
    import asyncio

    guard, loaded, named = _loading_guard(source, tmp_path, failing=set())
    planned: list[bool] = []
    load = _ensemble_load(guard)

    async def watched() -> object:
        planned.append(guard.changing_models())
        return await load()

    asyncio.run(guard.load_copied(watched))
    assert planned == [True] and loaded == ["dermassist"]
    assert named == [guard.identity] and guard.identity["build"] == served_build(source)  # named throughout
    guard.copy.close()


def test_a_read_of_the_identity_during_a_load_that_fails_does_not_outlast_it(source: Path, tmp_path: Path) -> None:
    """A heal that ended during a load read the half-updated copy; the load then failed and was put back, and the
    answers named the build of the files that had failed to load (review 24, M1)."""
    import asyncio

    from dermassist.guard.served_copy import LoadFailed

    guard, loaded, _ = _loading_guard(source, tmp_path, failing={"triage"})
    first = dict(guard.identity)
    real = guard.triton.RepositoryModelLoad

    async def load_with_a_heal_ending(request, metadata, timeout):
        if request.model_name == "triage" and "triage" not in loaded:
            guard.models_loaded()  # a heal's restart or reload ended meanwhile: its readiness reads the identity
            await guard.read_identity()
            assert guard.identity == {}  # not read while the copy changes
        return await real(request, metadata=metadata, timeout=timeout)

    guard.triton.RepositoryModelLoad = load_with_a_heal_ending
    _tuned(source, 0.6)
    seal(source)
    with pytest.raises(LoadFailed):
        asyncio.run(guard.load_copied(_ensemble_load(guard)))
    assert guard.identity == first == {"release": "tiny version 1", "build": served_build(guard.copy.repository)}
    guard.copy.close()


def test_a_swap_cut_between_its_two_renames_puts_the_served_entry_back(source: Path, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The served triage folder had been moved aside, the new one failed to move in, and the old one was deleted with
    the entries replaced (review 24, M3)."""
    copy = ServedCopy(source, parent=tmp_path)
    copy.fill()
    build = served_build(copy.repository)
    _tuned(source, 0.6)
    seal(source)
    real = os.rename

    def failing_rename(src, dst):
        if Path(src).parent.name == "incoming" and Path(src).name == "triage":
            raise OSError(5, "Input/output error")
        real(src, dst)

    monkeypatch.setattr(served_copy.os, "rename", failing_rename)
    with pytest.raises(CopyError, match=r"could not put the new copy of model repository .* in place of the one "
                                        r"served: \[Errno 5\] Input/output error"):
        copy.update()
    monkeypatch.setattr(served_copy.os, "rename", real)
    assert (copy.repository / "triage" / "1" / "model.py").is_file()
    assert served_build(copy.repository) == build
    copy.close()


def test_an_admin_load_that_ends_after_its_caller_went_is_told_in_the_log(source: Path, tmp_path: Path,
                                                                         caplog: pytest.LogCaptureFixture) -> None:
    import asyncio
    import logging

    guard, _, _ = _loading_guard(source, tmp_path, failing=set())
    _tuned(source, 0.6)  # not sealed: refused

    async def load_whose_caller_went() -> None:
        task = guard.start_load_copied(_ensemble_load(guard))
        await asyncio.wait({task})

    guard._identity_reads = set()
    with caplog.at_level(logging.WARNING, logger="dermassist.guard.guard"):
        asyncio.run(load_whose_caller_went())
    (record,) = caplog.records
    assert record.getMessage().startswith("an admin load of the ensemble was refused, nothing loaded: the model files "
                                          f"of {source} are not those written there")
    guard.copy.close()


def test_a_temporary_folder_tritonserver_cannot_serve_from_is_named_as_the_cause(source: Path, tmp_path: Path) -> None:
    """A TMPDIR with a space was blamed on --repository, whose folder was fine (review 24, L3)."""
    spaced = tmp_path / "a b"
    spaced.mkdir()
    with pytest.raises(CopyError, match=rf"the temporary folder {spaced} has ' ' in its path, which tritonserver 2.51 "
                                        "cannot serve models from .* start serve with TMPDIR naming one"):
        ServedCopy(source, parent=spaced)
    assert list(spaced.iterdir()) == []


def test_a_copy_that_fails_says_why_with_the_fix_its_cause_calls_for(tmp_path: Path) -> None:
    import errno

    from dermassist.guard.served_copy import copy_problem

    full = copy_problem(OSError(errno.ENOSPC, "No space left on device"), tmp_path)
    assert full == (f"[Errno 28] No space left on device; free space in {tmp_path} (room for two copies of the "
                    "models: the one served, and one made at each admin load), or start serve again with TMPDIR naming "
                    "a folder that has it")
    many = shutil.Error([("/m/a.pt", "/c/a.pt", "[Errno 13] Permission denied: '/c/a.pt'"),
                         ("/m/b.pt", "/c/b.pt", "[Errno 13] Permission denied: '/c/b.pt'")])
    assert copy_problem(many, tmp_path) == (f"[Errno 13] Permission denied: '/c/a.pt', copying /m/a.pt, and 1 more "
                                            f"files; let serve's user write in {tmp_path}, or start serve again with "
                                            "TMPDIR naming a folder it can write")


_READ_ONLY_RELEASE = """
import json, os, stat, sys
from pathlib import Path
from dermassist.base.repository import seal, served_build
from dermassist.guard.served_copy import ServedCopy

source, parent = Path(sys.argv[1]), Path(sys.argv[2])
for folder, _, _ in os.walk(source):
    os.chmod(folder, 0o555)  # a release made read-only, as one never changed in place may be
copy = ServedCopy(source, parent=parent)
copy.fill()
for folder in (source, source / "triage", source / "triage" / "1"):
    os.chmod(folder, 0o755)
(source / "triage" / "1" / "tuned.json").write_text(json.dumps({"values": {"refer_threshold": 0.6}}))
seal(source)
assert copy.update()[0] == [".artifacts.sha256", "triage"]
copy.keep()
assert served_build(copy.repository) == served_build(source)
copy.close()
print("left:", sorted(p.name for p in parent.iterdir()))
"""


def test_a_read_only_release_is_copied_updated_and_removed_by_a_user_without_privileges(source: Path) -> None:
    """As the image's non-root user: the copy's read-only folders could be neither swapped nor removed, and every copy
    was left behind (review 24, M2). Run as `nobody` where the tests run as root (root may write anywhere)."""
    import subprocess
    import sys
    import tempfile

    from tests.conftest import PROJECT_ROOT

    shared = Path(tempfile.mkdtemp(prefix="dermassist-readonly-"))
    try:
        os.chmod(shared, 0o777)
        release = shared / "release"
        shutil.copytree(source, release, symlinks=False)
        parent = shared / "tmp"
        parent.mkdir()
        command = [sys.executable, "-c", _READ_ONLY_RELEASE, str(release), str(parent)]
        if os.geteuid() == 0:
            for folder, _, names in os.walk(shared):
                for name in [*names, "."]:
                    os.chown(Path(folder) / name, 65534, 65534)
            command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *command]
        done = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120,
                              env={**os.environ, "PYTHONPATH": f"{PROJECT_ROOT}", "PYTHONDONTWRITEBYTECODE": "1"})
        assert done.returncode == 0, done.stderr[-3000:]
        assert done.stdout.strip() == "left: []"
    finally:
        for folder, _, _ in os.walk(shared):
            os.chmod(folder, 0o755)
        shutil.rmtree(shared)


def test_a_heal_that_ended_during_a_refused_load_has_its_identity_read_after_it(source: Path, tmp_path: Path) -> None:
    """A heal's read of the identity is put off while a load changes the copy; a load then refused never read it, and
    the answers named no build until the next change of the models (review 25, M1)."""
    import asyncio

    guard, loaded, _ = _loading_guard(source, tmp_path, failing=set())
    first = dict(guard.identity)
    real = guard.copy.update
    loops: list[asyncio.AbstractEventLoop] = []

    def update_while_a_heal_ends():
        guard.models_loaded()  # a heal's restart ended: the identity is to be read again
        asyncio.run_coroutine_threadsafe(guard.read_identity(), loops[0]).result()  # put off: the copy may change
        assert guard.identity == {} and guard._identity_due
        return real()

    async def load() -> None:
        loops.append(asyncio.get_running_loop())
        await guard.load_copied(_ensemble_load(guard))

    guard.copy.update = update_while_a_heal_ends
    _tuned(source, 0.6)  # not sealed: the load is refused
    with pytest.raises(CopyError):
        asyncio.run(load())
    assert loaded == [] and guard.identity == first and not guard._identity_due
    guard.copy.close()


def test_the_copy_holds_its_steps_byte_code_so_a_loaded_step_writes_none(source: Path, tmp_path: Path) -> None:
    """A stub wrote its model.py's byte-code into the copy once loaded, and tritonserver then took every step for changed
    at the next load of the ensemble (review 25, M2)."""
    import importlib.util

    copy = ServedCopy(source, parent=tmp_path)
    copy.fill()
    for step in ("prepare", "lesion_crop", "lesion_segmenter", "lesion_classifier", "triage"):
        code = Path(importlib.util.cache_from_source(str(copy.repository / step / "1" / "model.py")))
        assert code.is_file(), step
    assert served_build(copy.repository) == served_build(source)  # byte-code is no part of the build
    copy.close()


def _restartable(guard, events: list[str]) -> None:
    """Give a _loading_guard a stand-in tritonserver to restart (each restart recorded in ``events``)."""
    import concurrent.futures
    import threading
    from types import SimpleNamespace

    guard._lifecycle, guard._abandon, guard.reloads = concurrent.futures.ThreadPoolExecutor(1), threading.Event(), 0
    guard.server = SimpleNamespace(stop=lambda timeout_s: events.append("restart"), start=lambda: None)
    guard._find_stubs = lambda after_restart=False: None


def test_a_load_that_could_not_be_undone_names_no_build_until_a_restart(source: Path, tmp_path: Path) -> None:
    """The models served before a failed load could not all be loaded again: Triton answers on with what it holds,
    under no build, until a restart loads the copy (restarting at once looped when the copy could not load either:
    review 27)."""
    import asyncio

    from dermassist.guard.served_copy import LoadFailed

    guard, _, _ = _loading_guard(source, tmp_path, failing={"*"})
    first = dict(guard.identity)
    events: list[str] = []
    _restartable(guard, events)
    _tuned(source, 0.6)
    seal(source)
    with pytest.raises(LoadFailed) as failed:
        asyncio.run(guard.load_copied(_ensemble_load(guard)))
    assert not failed.value.restored and guard.identity == {} and events == []
    asyncio.run(guard.read_identity())
    assert guard.identity == {}  # not known: nothing named
    asyncio.run(guard._restart())
    asyncio.run(guard.read_identity())
    assert events == ["restart"] and guard.identity == first  # the copy served before, loaded whole
    guard.copy.close()


def test_a_restart_waits_for_an_admin_load_to_end(source: Path, tmp_path: Path) -> None:
    """A restart during a load started tritonserver on half the copy, or checked it between two renames (review 27,
    M2): it runs once the load has ended, on the copy the load left."""
    import asyncio

    guard, _, _ = _loading_guard(source, tmp_path, failing=set())
    events: list[str] = []
    _restartable(guard, events)
    real = guard.triton.RepositoryModelLoad

    async def slow_load(request, metadata, timeout):
        events.append(f"load {request.model_name}")
        await asyncio.sleep(0.3)
        return await real(request, metadata=metadata, timeout=timeout)

    guard.triton.RepositoryModelLoad = slow_load
    _tuned(source, 0.6)
    seal(source)

    async def a_load_and_a_restart() -> None:
        load = asyncio.create_task(guard.load_copied(_ensemble_load(guard)))
        while not events:  # the load has begun loading the changed step
            await asyncio.sleep(0.01)
        await guard._restart()
        await load

    asyncio.run(a_load_and_a_restart())
    assert events == ["load triage", "load dermassist", "restart"]
    guard.copy.close()


def test_the_byte_code_matches_its_sources_after_a_restore_and_never_sits_at_the_top(source: Path,
                                                                                     tmp_path: Path) -> None:
    """A byte-code file older than its touched source is written again by the stub, which makes the step look changed
    (review 26, L1); a __pycache__ at the repository's top level stopped tritonserver's start (review 26, H1)."""
    import importlib.util
    import struct

    def current(model_py: Path) -> bool:
        code = Path(importlib.util.cache_from_source(str(model_py)))
        recorded = struct.unpack("<I", code.read_bytes()[8:12])[0]  # the source's time the byte-code was made from
        return recorded == int(model_py.stat().st_mtime) & 0xFFFFFFFF

    (source / "helpers.py").write_text("VALUE = 1\n")  # a file of the release's top level (the seal allows it)
    copy = ServedCopy(source, parent=tmp_path)
    copy.fill()
    assert not (copy.repository / "__pycache__").exists() and (copy.repository / "helpers.py").is_file()
    triage = copy.repository / "triage" / "1" / "model.py"
    assert current(triage)
    _tuned(source, 0.6)
    seal(source)
    time.sleep(1.1)  # the restore's touch lands in another second than the copy's
    copy.update()
    copy.restore()
    assert current(triage)
    copy.close()


def test_a_load_that_does_not_end_in_time_fails_and_is_undone(source: Path, tmp_path: Path) -> None:
    """A load's Triton calls each had the whole start-up timeout, and a restart waiting for the load could outlast the
    liveness bound (review 28, M1): the load has reload_timeout_s, as a reload has, and so has its undo."""
    import asyncio

    from dermassist.guard.served_copy import LoadFailed

    guard, loaded, _ = _loading_guard(source, tmp_path, failing=set())
    guard.config.reload_timeout_s = 0.5
    first = dict(guard.identity)
    real = guard.triton.RepositoryModelLoad

    async def hung_once(request, metadata, timeout):
        if request.model_name == "triage" and "triage" not in loaded:
            loaded.append("triage")
            await asyncio.sleep(30)  # Triton does not answer
        return await real(request, metadata=metadata, timeout=timeout)

    guard.triton.RepositoryModelLoad = hung_once
    _tuned(source, 0.6)
    seal(source)
    started = time.monotonic()
    with pytest.raises(LoadFailed) as failed:
        asyncio.run(guard.load_copied(_ensemble_load(guard)))
    assert time.monotonic() - started < 5
    assert failed.value.code == grpc.StatusCode.DEADLINE_EXCEEDED and failed.value.restored
    assert "did not end within reload_timeout_s (0.5 s)" in failed.value.details
    assert loaded == ["triage", "triage", "dermassist"] and guard.identity == first
    guard.copy.close()
