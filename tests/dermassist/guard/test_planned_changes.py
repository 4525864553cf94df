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
