"""What an operator audit found in healing and stopping: liveness stayed true while recovery kept failing (so the pod
was never restarted and kept its GPU), a reload of a model that cannot load waited the whole start-up timeout, and a
SIGTERM during a recovery restart waited for that restart to end (finding 1 and 2)."""
from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import signal
import threading
import time
from pathlib import Path

import grpc
import pytest
from tritonclient.grpc import service_pb2, service_pb2_grpc

from dermassist.base.errors import ConfigError, ServerError
from dermassist.base.server_config import ServerConfig
from dermassist.guard import guard as guard_module
from dermassist.guard import health as health_module
from dermassist.guard.config import GuardConfig
from dermassist.guard.faults import Fault
from dermassist.guard.guard import Guard
from dermassist.guard.health import STOPPING, Readiness, health_answer
from preprocess.contract import STEP_MODELS
from tests.support.polling import wait_until

from .stand_in import RESTART_S, StandInServer, background_guard, http_get


class GuardClock:
    """The ``time`` the guard's modules see: ``monotonic`` reads ``now``, which only the test moves; everything else
    is the real module (asyncio's own timers keep the real clock)."""

    def __init__(self, now: float) -> None:
        self.now = now

    def monotonic(self) -> float:
        return self.now

    def __getattr__(self, name: str) -> object:
        return getattr(time, name)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> GuardClock:
    """A clock the test moves, read by the guard (deadlines, unready time) and its readiness (since when)."""
    fake = GuardClock(time.monotonic())  # from the present: a Readiness made before the patch stays comparable
    monkeypatch.setattr(guard_module, "time", fake)
    monkeypatch.setattr(health_module, "time", fake)
    return fake

# --- 1. liveness tells the truth -----------------------------------------------------------------------------------


def test_liveness_turns_false_only_after_the_bound_and_says_why_once(caplog: pytest.LogCaptureFixture) -> None:
    readiness = Readiness(max_unready_s=600.0)
    readiness.set_ready()
    readiness.set_not_ready("recovery failed (reload lesion_crop, since 06:15:00 UTC): DEADLINE_EXCEEDED")
    since = readiness.since
    assert readiness.live_problem(now=since + 599.9) is None  # (since + 600.0 - since can round past 600.0)
    with caplog.at_level(logging.ERROR, logger="dermassist.guard.health"):
        problem = readiness.live_problem(now=since + 601.0)
        assert readiness.live_problem(now=since + 700.0) is not None
    assert problem is not None
    assert "not ready for 601 s, over max_unready_s (600 s)" in problem and "reload lesion_crop" in problem
    assert "--max-unready-s / DERMASSIST_MAX_UNREADY_S" in problem
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR] == [f"not live: {problem}"]  # once
    readiness.set_not_ready(STOPPING)  # stopping because it was not live: a monitor must not see it recover
    assert readiness.live_problem(now=since + 700.0) == readiness.live_problem(now=since + 701.0) is not None
    readiness.set_ready()
    assert readiness.live_problem(now=since + 10_000.0) is None
    healed = Readiness(max_unready_s=600.0)
    healed.set_not_ready("recovering")
    assert healed.live_problem(now=healed.since + 601.0) is not None
    healed.set_ready()  # healed before the liveness loop looked again
    healed.set_not_ready(STOPPING)
    assert healed.live_problem(now=healed.since + 10_000.0) is None
    draining = Readiness(max_unready_s=600.0)
    draining.set_ready()
    draining.set_not_ready(STOPPING)  # the orchestrator stops a live guard: draining is not death
    assert draining.live_problem(now=draining.since + 10_000.0) is None
    assert Readiness().live_problem(now=time.monotonic() + 10_000.0) is None  # no bound: always live


def test_moments_of_readiness_between_faults_do_not_end_the_unready_spell(clock: GuardClock) -> None:
    """tritonserver short of file descriptors died half a second after each healed restart: every moment of readiness
    began the unready spell again, so the guard flapped for ever and never turned not live (failure audit 2)."""
    readiness = Readiness(max_unready_s=600.0)
    readiness.set_ready()
    clock.now += 3600.0  # an hour of good service
    readiness.set_not_ready("tritonserver exited (code 1); recovering by restart")
    began = clock.now
    assert readiness.unready_since == began  # a readiness that held ends the spell before it
    while clock.now - began < 700.0:
        clock.now += 10.5
        readiness.set_ready()
        assert readiness.live_problem() is None  # a probe that finds it ready finds it live
        clock.now += 0.5
        readiness.set_not_ready("tritonserver exited (code 1); recovering by restart")
    assert readiness.unready_since == began and readiness.since == clock.now
    problem = readiness.live_problem()
    assert problem is not None and f"not ready for {clock.now - began:.0f} s, over max_unready_s (600 s)" in problem
    assert "and not healed (ready only for moments under 15 s between faults): tritonserver exited" in problem
    assert readiness.flapped() == " (ready only for moments under 15 s between faults)"
    readiness.set_ready()
    clock.now += 15.0  # this time it held
    readiness.set_not_ready("another fault")
    assert readiness.unready_since == clock.now and readiness.live_problem() is None and readiness.flapped() == ""


def test_a_fault_that_comes_back_moments_after_a_healing_is_healed_again_only_after_a_backoff(
        tmp_path: Path, clock: GuardClock, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """Each restart healed and the next fault came half a second later, so the guard restarted tritonserver at once,
    for ever; now the wait grows as after failed recoveries (2, 4, 8 ... s), and a healing that held waits for nothing."""
    from dermassist.guard.faults import Recovery

    from .test_start_checks import _guard

    guard = _guard(tmp_path)
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    monkeypatch.setattr(guard_module.asyncio, "sleep", sleep)
    fault = Fault("tritonserver exited (code 1)", server_down=True)
    for detected, ready in ((20.0, 9.0), (8.5, 0.5)):
        guard.recoveries.append(Recovery("tritonserver exited (code 1)", "restart", clock.now - detected,
                                         ready_at=clock.now - ready, fault="tritonserver"))
    with caplog.at_level(logging.WARNING, logger="dermassist.guard.guard"):
        asyncio.run(guard._after_brief_healing(fault))
    assert waits == [4.0]  # two healings in a row that did not hold
    assert "the pipeline broke 0.5 s after the last recovery (restart) brought it back: waiting 4 s" in caplog.text
    assert guard.readiness.reason == ("tritonserver exited (code 1); it broke again 0.5 s after the last recovery: "
                                      "healing again in 4 s")
    asyncio.run(guard._after_brief_healing(Fault("stub process lesion_crop_0_0 (pid 9) exited", ("lesion_crop",))))
    assert waits == [4.0]  # another step's fault: healed at once
    guard.recoveries[-1].ready_at = clock.now - 61.0  # it held a minute: a new incident is healed at once
    asyncio.run(guard._after_brief_healing(fault))
    assert waits == [4.0]
    guard.audit.close()


def test_the_live_path_answers_503_with_the_reason_past_the_bound() -> None:
    readiness = Readiness(max_unready_s=1.0)
    readiness.set_not_ready("recovery failed (restart, since 06:18:22 UTC): tritonserver exited with code -9")
    readiness.unready_since -= 2.0  # unready for two seconds already
    head, _, body = health_answer("GET", "/v2/health/live", readiness).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 503")
    reason = json.loads(body)
    assert reason["live"] is False and "tritonserver exited with code -9" in reason["reason"]
    assert health_answer("HEAD", "/v2/health/live", readiness).startswith(b"HTTP/1.1 503")


def test_the_unready_bound_is_validated_and_read_from_the_environment(tmp_path: Path) -> None:
    assert GuardConfig.resolve({"max_unready_s": None}, {"DERMASSIST_MAX_UNREADY_S": "900"}).max_unready_s == 900.0
    assert GuardConfig.resolve({"reload_timeout_s": None}, {"DERMASSIST_RELOAD_TIMEOUT_S": "45"}).reload_timeout_s == 45
    for name in ("max_unready_s", "reload_timeout_s"):
        with pytest.raises(ConfigError, match=f"--{name.replace('_', '-')} / DERMASSIST_{name.upper()}"):
            GuardConfig(**{name: 0})
    # the defaults leave room for the longest normal recovery under serve's start-up timeout and the Deployment's
    for startup_s in (ServerConfig().startup_timeout_s, 270.0):
        assert GuardConfig().unready_bound_problem(startup_s) is None
        assert GuardConfig().longest_recovery_s(startup_s) > startup_s
    # docs/operations.md's figures: one reload_timeout_s for a whole reload and two for an admin load and its undo
    # that a restart waits for, three canaries, 15 s of other calls
    assert (GuardConfig().longest_recovery_s(180.0), GuardConfig().longest_recovery_s(270.0)) == (405.0, 495.0)
    # a start-up timeout that a restart may use up whole leaves no room: refused before anything starts
    server = StandInServer(tmp_path, startup_timeout_s=600.0)
    with pytest.raises(ConfigError, match=r"max_unready_s \(600 s\) must exceed the longest normal recovery, 825 s.*"
                                          r"--max-unready-s / DERMASSIST_MAX_UNREADY_S"):
        Guard(ServerConfig(repository=tmp_path), GuardConfig(audit_log=str(tmp_path / "a.jsonl")), server)  # type: ignore[arg-type]
    Guard(ServerConfig(repository=tmp_path), GuardConfig(audit_log=str(tmp_path / "b.jsonl"), max_unready_s=900),
          server).audit.close()  # type: ignore[arg-type]


def test_a_reload_waits_reload_timeout_s_not_the_start_up_timeout(tmp_path: Path, clock: GuardClock) -> None:
    """A reload of a model that cannot load (its model.py gone) waited tritonserver's whole start-up timeout (180 s,
    270 s in the Deployment) before the fallback restart."""
    calls: list[tuple[str, float]] = []

    class Triton:
        async def RepositoryModelUnload(self, request, metadata, timeout):  # Triton's method names
            calls.append((f"unload {request.model_name}", timeout))

        async def RepositoryModelLoad(self, request, metadata, timeout):
            calls.append((f"load {request.model_name}", timeout))

        async def ModelReady(self, request, timeout):
            return service_pb2.ModelReadyResponse(ready=False)

    server = StandInServer(tmp_path, startup_timeout_s=180.0)
    guard = Guard(ServerConfig(repository=tmp_path),
                  GuardConfig(audit_log=str(tmp_path / "a.jsonl"), reload_timeout_s=7.0), server)  # type: ignore[arg-type]
    guard.triton = Triton()  # type: ignore[assignment]
    asyncio.run(guard._reload(("lesion_crop",)))
    guard.audit.close()
    # each call's deadline is what is left of the one reload_timeout_s (the guard's clock does not move here)
    assert calls == [("unload lesion_crop", 7.0), ("load lesion_crop", 7.0), ("load dermassist", 7.0)]
    calls.clear()
    guard.config = GuardConfig(audit_log=str(tmp_path / "b.jsonl"), reload_timeout_s=45.0)
    asyncio.run(guard._reload(("lesion_crop",)))
    assert [name for name, _ in calls] == ["unload lesion_crop", "load lesion_crop", "load dermassist"]
    assert [timeout for _, timeout in calls] == [30.0, 45.0, 45.0]  # an unload keeps its own 30 s


def test_a_reload_of_several_models_ends_within_one_reload_timeout_s(tmp_path: Path, clock: GuardClock) -> None:
    """Review 1, finding 2: each unload and load of a reload had its own reload_timeout_s, so a fault naming k models
    could take about k x 90 s, past what the liveness bound counts (one reload) and past max_unready_s once the
    fallback restart came too. The whole reload now has the one deadline, however many models it touches: each call
    is given what is left of it on the guard's clock, and the guard ends the reload there."""
    calls: list[tuple[str, float]] = []

    class Triton:  # each unload answers after 0.1 s of the guard's clock, each load hangs (a model that cannot load)
        async def RepositoryModelUnload(self, request, metadata, timeout):
            calls.append((f"unload {request.model_name}", timeout))
            clock.now += 0.1

        async def RepositoryModelLoad(self, request, metadata, timeout):
            calls.append((f"load {request.model_name}", timeout))
            await asyncio.sleep(5.0)  # (5 s, not for ever: a guard without the one deadline fails, not hangs, here)

        async def ModelReady(self, request, timeout):
            raise AssertionError("the loads never end: the ensemble's readiness is not asked")

    server = StandInServer(tmp_path, model_control_mode="explicit")  # as the guard's own tritonserver runs for reloads
    guard = Guard(ServerConfig(repository=tmp_path),
                  GuardConfig(audit_log=str(tmp_path / "a.jsonl"), reload_timeout_s=0.6), server)  # type: ignore[arg-type]
    guard.triton = Triton()  # type: ignore[assignment]
    fault = Fault("stub processes of every step exited", STEP_MODELS)
    problem = asyncio.run(guard._heal(guard._choose(fault), fault))
    guard._lifecycle.shutdown(wait=True)
    guard.audit.close()
    assert guard._choose(fault) == "reload " + ", ".join(STEP_MODELS)
    # the guard's one deadline ended the hanging load (without it the loads run 5 s each, then ModelReady fails)
    assert problem == f"the reload of {', '.join(STEP_MODELS)} did not end within reload_timeout_s (0.6 s)"
    # every unload, then the first load, which hangs until the one deadline ends it; each call was given what was left
    # of the one 0.6 s, not a reload_timeout_s of its own
    assert [name for name, _ in calls] == [f"unload {m}" for m in STEP_MODELS] + [f"load {STEP_MODELS[0]}"]
    left = [0.6 - 0.1 * i for i in range(len(STEP_MODELS) + 1)]  # 0.6, 0.5, ... 0.1
    assert [timeout for _, timeout in calls] == pytest.approx(left), calls
    assert guard.reloads == 0  # a reload that did not end is not counted


def test_liveness_stays_true_during_a_short_recovery_and_readiness_says_what_heals_since_when(tmp_path: Path) -> None:
    server = StandInServer(tmp_path)
    background = background_guard(tmp_path, server)
    guard = background.guard
    healing, release = threading.Event(), threading.Event()

    async def heal(action: str, fault: Fault) -> str | None:
        healing.set()
        while not release.is_set():
            await asyncio.sleep(0.01)
        server.alive = True
        return None

    guard._heal = heal  # type: ignore[method-assign]
    with background:
        server.alive = False  # tritonserver died: the guard restarts it
        assert healing.wait(30)
        status, body = http_get(background.http_address, "/v2/health/ready")
        assert status == 503
        assert body["reason"].startswith("tritonserver exited (code -9); recovering by restart since ")
        assert http_get(background.http_address, "/v2/health/live") == (200, {"live": True})
        release.set()
        assert background.wait_ready(30)
        assert http_get(background.http_address, "/v2/health/live") == (200, {"live": True})
    assert [r.action for r in guard.recoveries] == ["restart"] and guard.recoveries[0].error is None


def test_liveness_turns_false_when_recovery_keeps_failing_and_both_health_paths_say_why(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    server = StandInServer(tmp_path)
    background = background_guard(tmp_path, server)
    guard = background.guard
    # the bound is checked against the longest recovery when the guard is made; a short one keeps this test short
    guard.config = dataclasses.replace(guard.config, max_unready_s=0.5)

    async def heal(action: str, fault: Fault) -> str | None:
        return "the stand-in stays broken"

    guard._heal = heal  # type: ignore[method-assign]
    with caplog.at_level(logging.ERROR, logger="dermassist.guard.health"), background:
        assert http_get(background.http_address, "/v2/health/live") == (200, {"live": True})
        server.alive = False
        assert wait_until(lambda: http_get(background.http_address, "/v2/health/live")[0] == 503, 30.0)
        _, body = http_get(background.http_address, "/v2/health/live")
        assert body["live"] is False and "over max_unready_s (0.5 s)" in body["reason"]
        assert "recovery failed (restart, since " in body["reason"] and "the stand-in stays broken" in body["reason"]
        with grpc.insecure_channel(background.grpc_address) as channel:
            answer = service_pb2_grpc.GRPCInferenceServiceStub(channel).ServerLive(service_pb2.ServerLiveRequest(),
                                                                                   timeout=10)
        assert answer.live is False
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("not live: ")]
    assert len(said) == 1 and "the stand-in stays broken" in said[0]
    assert guard.recoveries and all(r.error == "the stand-in stays broken" for r in guard.recoveries)


def test_a_long_recovery_says_every_interval_that_it_goes_on(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A reload that hung logged nothing for three minutes: a line now says the guard is still not ready, and why."""
    import dermassist.guard.guard as guard_module

    monkeypatch.setattr(guard_module, "STILL_UNREADY_LOG_S", 0.2)
    monkeypatch.setattr(guard_module, "LIVENESS_CHECK_S", 0.02)
    server = StandInServer(tmp_path)
    background = background_guard(tmp_path, server)
    release = threading.Event()

    async def heal(action: str, fault: Fault) -> str | None:
        while not release.is_set():  # a recovery that hangs until the test lets it go
            await asyncio.sleep(0.01)
        server.alive = True
        return None

    background.guard._heal = heal  # type: ignore[method-assign]
    with caplog.at_level(logging.WARNING, logger="dermassist.guard.guard"), background:
        assert not [r for r in caplog.records if r.getMessage().startswith("still not ready")]  # ready: nothing
        server.alive = False

        def told() -> list[str]:
            return [r.getMessage() for r in caplog.records if r.getMessage().startswith("still not ready after ")]

        assert wait_until(lambda: len(told()) >= 2, 30.0)
        release.set()
        assert background.wait_ready(30)
    assert "(not live after 600 s): tritonserver exited (code -9); recovering by restart since " in told()[0]


def test_with_exit_when_not_live_the_guard_stops_itself_and_says_why(tmp_path: Path) -> None:
    """docker-compose acts on no health check: its restart policy needs the process to exit."""
    assert GuardConfig.resolve({}, {"DERMASSIST_EXIT_WHEN_NOT_LIVE": "true"}).exit_when_not_live is True
    assert GuardConfig().exit_when_not_live is False
    server = StandInServer(tmp_path)
    background = background_guard(tmp_path, server, exit_when_not_live=True)
    guard = background.guard
    guard.config = dataclasses.replace(guard.config, max_unready_s=0.5)  # short, as above

    async def heal(action: str, fault: Fault) -> str | None:
        return "the stand-in stays broken"

    guard._heal = heal  # type: ignore[method-assign]
    background.start()
    try:
        assert background.running
        server.alive = False
        assert wait_until(lambda: not background.running, 30.0)
    finally:
        background.stop()
    error = background._error
    assert isinstance(error, ServerError), error
    assert str(error).startswith("the guard stopped itself because it was no longer live (exit_when_not_live): "
                                 "not ready for ")
    assert "the stand-in stays broken" in str(error)


def test_the_unready_clock_starts_when_the_front_serves_not_before_tritonservers_start_up(
        tmp_path: Path, clock: GuardClock) -> None:
    """Review 1, finding 3: the clock started before tritonserver's start-up (up to startup_timeout_s), so under
    compose (exit_when_not_live) the first unready spell was a start-up plus a recovery, more than the bound allows
    for. It now starts when the front serves; a guard that then never becomes ready still goes not live."""
    from dermassist.base.repository import missing_artifacts
    from preprocess.contract import ENSEMBLE_NAME

    for needed in (tmp_path / ENSEMBLE_NAME / "config.pbtxt", *missing_artifacts(tmp_path)):  # servable, as serve needs
        needed.parent.mkdir(parents=True, exist_ok=True)
        needed.touch()
    server = StandInServer(tmp_path, restart_s=0.0)
    start = server.start
    started_at: list[float] = []

    def slow_start() -> StandInServer:  # its start takes 1.5 s of the guard's clock, longer than max_unready_s below
        clock.now += 1.5
        started_at.append(clock.now)
        return start()

    server.start = slow_start  # type: ignore[method-assign]
    background = background_guard(tmp_path, server, exit_when_not_live=True)
    guard = background.guard
    guard._owns_server = True  # the guard starts its tritonserver (here the stand-in) as `serve`'s does
    guard.config = dataclasses.replace(guard.config, max_unready_s=1.0)
    loaded = threading.Event()

    async def canary() -> str | None:  # the models are still loading until the test says they are not
        return None if loaded.is_set() else "canary inference failed: UNAVAILABLE: the models are still loading"

    guard.canary = canary  # type: ignore[method-assign]
    background._thread.start()
    try:
        assert background._started.wait(30) and background._error is None and server.started == 1
        assert guard.readiness.since == started_at[0]  # counted from the front, not from before the start-up
        assert http_get(background.http_address, "/v2/health/live") == (200, {"live": True})
        clock.now += 0.5  # 2 s after the guard began, 0.5 s after it serves: live (it was not live at once before)
        assert guard.readiness.live_problem() is None
        assert http_get(background.http_address, "/v2/health/live") == (200, {"live": True})
        assert background.running
        # never ready since it serves: past max_unready_s it goes not live and, under compose, exits
        clock.now += 0.6
        assert wait_until(lambda: not background.running, 10)
    finally:
        loaded.set()
        background.stop()
    assert isinstance(background._error, ServerError) and "the models are still loading" in str(background._error)
    assert "not ready for 1 s, over max_unready_s (1 s)" in str(background._error)  # 1.1 s from when it served


# --- 2. a stop during a recovery restart does not wait for it -------------------------------------------------------


def test_a_stop_during_a_recovery_restart_abandons_it_instead_of_waiting_for_it(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """``serve`` took 95.5 s to exit after a SIGTERM during a restart: the stop queued behind the restart on the
    lifecycle thread. The stand-in's start takes RESTART_S unless signalled; the stop must end well before."""
    server = StandInServer(tmp_path)
    background = background_guard(tmp_path, server)
    with caplog.at_level(logging.INFO, logger="dermassist.guard.guard"):
        background.start()
        server.alive = False  # tritonserver died: the guard restarts it, and the start blocks
        assert server.starting.wait(30)
        stop_began = time.monotonic()
        background.stop()
        stopped_s = time.monotonic() - stop_began
    assert not background.running
    assert stopped_s < RESTART_S / 4, f"the stop took {stopped_s:.1f} s: it waited for the restart"
    assert signal.SIGTERM in server.signals and server.started == 0  # the starting server was told to stop
    messages = [r.getMessage() for r in caplog.records]
    assert "stopping during a restart of tritonserver: the restart is abandoned" in messages
    assert any(m.startswith("the abandoned restart ended: tritonserver exited with code -15") for m in messages)
    assert background.guard.recoveries[-1].ready_at is None


def test_a_stop_between_the_old_servers_stop_and_the_new_start_starts_nothing(tmp_path: Path) -> None:
    """The flag is looked at after the old server stopped: a restart told to give up then launches no server."""
    server = StandInServer(tmp_path)
    guard = Guard(ServerConfig(repository=tmp_path), GuardConfig(audit_log=str(tmp_path / "a.jsonl")),
                  server)  # type: ignore[arg-type]
    guard._abandon.set()
    with pytest.raises(Exception, match="the restart of tritonserver was abandoned: the guard is stopping"):
        asyncio.run(guard._restart())
    guard._lifecycle.shutdown(wait=True)
    guard.audit.close()
    assert not server.starting.is_set() and not server.alive


def test_a_stop_with_no_restart_running_sends_no_signal(tmp_path: Path) -> None:
    server = StandInServer(tmp_path)
    guard = Guard(ServerConfig(repository=tmp_path), GuardConfig(audit_log=str(tmp_path / "a.jsonl")),
                  server)  # type: ignore[arg-type]
    asyncio.run(guard._abandon_restart())
    guard._lifecycle.shutdown(wait=True)
    guard.audit.close()
    assert server.signals == [] and not guard._abandon.is_set()


def test_calls_waiting_for_readiness_are_refused_the_moment_the_guard_stops() -> None:
    """They were held for their whole wait (30 s) though readiness could not come back, and serve took 31 s to exit."""
    async def main() -> tuple[bool, bool]:
        readiness = Readiness()
        readiness.set_not_ready("recovering by restart")
        waiting = asyncio.ensure_future(readiness.wait(3600.0))
        await asyncio.sleep(0)
        readiness.set_not_ready(STOPPING)
        woken = await asyncio.wait_for(waiting, 10.0)  # raises TimeoutError if it still waits out its hour
        late = await asyncio.wait_for(readiness.wait(3600.0), 10.0)  # a call arriving while it stops
        return woken, late

    assert asyncio.run(main()) == (False, False)


@pytest.mark.parametrize(("remaining", "hold"), [(None, 30.0), (100.0, 30.0), (30.0, 29.0), (5.0, 4.5), (0.5, 0.45),
                                                 (-1.0, 0.0)])
def test_a_held_call_keeps_time_for_its_refusal_to_reach_it(remaining: float | None, hold: float) -> None:
    """A held call waited out its whole deadline (the SDK's 30 s = hold_s), so it never got the UNAVAILABLE naming why:
    it got DEADLINE_EXCEEDED, "raise timeout". A tenth of the time left, at most 1 s, is kept."""
    from dermassist.guard.statuses import held_for

    assert held_for(remaining, 30.0) == pytest.approx(hold)


def test_the_next_try_keeps_the_cause_the_last_one_found_and_a_restart_names_a_repository_without_models(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Between tries the reason said only "tritonserver exited (code 1)", and a restart of a repository that had lost
    its models started a tritonserver serving nothing, "unknown model 'dermassist'" its only word (failure audit 7)."""
    from types import SimpleNamespace

    from dermassist.guard.faults import Recovery
    from dermassist.guard.served_copy import ServedCopy

    from .test_start_checks import _guard

    guard = _guard(tmp_path)
    found = "canary inference failed: NOT_FOUND: Request for unknown model: 'dermassist' is not found"
    guard.recoveries.append(Recovery("stub exited", "restart", time.monotonic() - 5.0, error=found))
    reasons: list[str] = []

    async def heal(action: str, fault: Fault) -> str | None:
        reasons.append(guard.readiness.reason)
        return None

    async def ready() -> None:
        guard.readiness.set_ready()

    guard._heal = heal  # type: ignore[method-assign]
    guard._mark_ready = ready  # type: ignore[method-assign]
    guard._after_brief_healing = lambda fault: asyncio.sleep(0)  # type: ignore[method-assign]
    guard.server.log_tail = lambda: "(the log)"  # type: ignore[attr-defined]
    asyncio.run(guard._recover(Fault("tritonserver exited (code 1)", server_down=True)))
    (reason,) = reasons
    assert reason.startswith("tritonserver exited (code 1); recovering by restart since ")
    assert reason.endswith(f"(the last try failed: {found})")
    started: list[bool] = []
    guard.server = SimpleNamespace(stop=lambda timeout_s: None, start=lambda: started.append(True))  # type: ignore[assignment]
    guard._owns_server = True
    guard.copy = ServedCopy(tmp_path)  # the served copy lost its models (a cleaner of the temporary folder)
    with pytest.raises(ServerError, match=rf"the copy of model repository {tmp_path} that is served \(.+\) lost or "
                                          r"changed files since it was made \(.+ is not a DermAssist model repository "
                                          r"\(it has no dermassist/config\.pbtxt\).+restart serve"):
        asyncio.run(guard._restart())
    assert started == []  # not started on a repository that cannot serve
    guard.copy.close()
    guard.audit.close()
