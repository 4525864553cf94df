"""An admin load or unload is a planned change, not a fault: the stubs of the instances Triton replaces exit, and
the guard had taken each exit for a pipeline fault (reloads, a restart of tritonserver, readiness flapping, an
UNAVAILABLE to a client, recoveries counted; upgrade audit, H4). The canary still judges the pipeline meanwhile."""
from __future__ import annotations

import subprocess
import types

import pytest

import dermassist.guard.guard as guard_module
from dermassist.guard.guard import Guard
from dermassist.guard.stubs import Stub


def _guard_with_a_dead_stub() -> tuple[Guard, list[str]]:
    guard = Guard.__new__(Guard)
    guard.identity, guard._identity_due, guard._identity_generation = {}, True, 0
    guard.server = types.SimpleNamespace(running=True, returncode=None, pid=0)
    guard._stubs_unknown, guard._blind, guard._cannot_look_told = False, None, None
    guard._planned, guard._planned_until = 0, 0.0
    guard.copy = None  # a tritonserver it was given, reading the folder itself
    guard._identity_lost, guard._copy_changing = False, False
    dead = subprocess.Popen(["true"])
    dead.wait()  # a pid that has exited and been reaped
    guard.stubs = [Stub(dead.pid, "lesion_crop", "lesion_crop_0_0")]
    looked: list[str] = []

    def find_stubs(after_restart: bool = False) -> None:
        looked.append("found")
        guard.stubs = []

    guard._find_stubs = find_stubs  # type: ignore[method-assign]
    return guard, looked


def test_a_stub_that_exits_during_an_admin_load_is_no_fault_and_the_new_stubs_are_looked_for() -> None:
    guard, looked = _guard_with_a_dead_stub()
    guard.models_changing()
    assert guard.changing_models()
    assert guard._scan() is None and looked == ["found"]


def test_the_grace_after_a_load_returns_ends_and_an_exit_is_a_fault_again(monkeypatch: pytest.MonkeyPatch) -> None:
    guard, looked = _guard_with_a_dead_stub()
    guard.models_changing()
    guard.models_changed()
    assert guard.changing_models()  # within PLANNED_CHANGE_GRACE_S of the load's answer
    monkeypatch.setattr(guard_module, "PLANNED_CHANGE_GRACE_S", 0.0)
    guard.models_changed()
    assert not guard.changing_models()
    fault = guard._scan()
    assert fault is not None and "lesion_crop_0_0" in fault.reason and looked == []


def test_without_a_load_an_exited_stub_is_a_fault() -> None:
    guard, looked = _guard_with_a_dead_stub()
    fault = guard._scan()
    assert fault is not None and fault.models == ("lesion_crop",) and looked == []


def test_a_repository_changed_on_disk_since_its_models_were_loaded_is_told_once_and_its_return_too(
        tmp_path, caplog: pytest.LogCaptureFixture) -> None:
    """A change to the served folder lay dormant until the next heal, which then loaded it, an outage or a mix of two
    releases, without a word (upgrade audit, M1)."""
    import logging
    import os

    from dermassist.base.repository import repository_marks

    step = tmp_path / "triage" / "1" / "model.py"
    step.parent.mkdir(parents=True)
    step.write_text("# the step\n")
    guard, _ = _guard_with_a_dead_stub()
    guard.triton_config = types.SimpleNamespace(repository=tmp_path)
    guard.source = tmp_path
    guard._loaded_marks, guard.repository_changed = repository_marks(tmp_path), []
    loaded = step.stat()
    with caplog.at_level(logging.INFO, logger="dermassist.guard.guard"):
        guard.look_at_repository(repository_marks(tmp_path))  # as loaded: nothing
        step.write_text("# the step, changed\n")
        for _ in range(2):
            guard.look_at_repository(repository_marks(tmp_path))
        assert guard.repository_changed == ["triage/1/model.py"]
        step.write_text("# the step\n")
        os.utime(step, ns=(loaded.st_atime_ns, loaded.st_mtime_ns))  # put back as it was
        guard.look_at_repository(repository_marks(tmp_path))
    assert guard.repository_changed == []
    told = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert [level for level, _ in told] == ["WARNING", "INFO"]
    assert "changed on disk since its models were loaded (triage/1/model.py)" in told[0][1]
    guard.models_changing()  # an admin load under way changes the files it loads: not told
    step.write_text("# another\n")
    guard.look_at_repository(repository_marks(tmp_path))
    assert guard.repository_changed == []
