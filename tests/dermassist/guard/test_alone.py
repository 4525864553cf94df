"""The front's gate to Triton (``AloneGate``): a call forwarded alone waits for the calls forwarded together to end,
and the calls that come after it wait for it; a wait past its hold is a TimeoutError that leaves the gate as it was."""
from __future__ import annotations

import asyncio

import pytest

from dermassist.guard.alone import AloneGate


def test_a_call_alone_waits_for_the_calls_together_and_the_later_ones_wait_for_it() -> None:
    async def scenario() -> list[str]:
        gate = AloneGate()
        order: list[str] = []

        async def call(name: str, alone: bool, seconds: float) -> None:
            async with gate.forwarding(alone, timeout_s=5):
                order.append(f"{name} in ({gate.together} together, alone {gate.alone})")
                await asyncio.sleep(seconds)
            order.append(f"{name} out")

        first = asyncio.create_task(call("a", False, 0.2))
        second = asyncio.create_task(call("b", False, 0.1))
        await asyncio.sleep(0.02)
        solo = asyncio.create_task(call("suspect", True, 0.1))
        await asyncio.sleep(0.02)
        later = asyncio.create_task(call("c", False, 0.0))  # after the suspect asked: waits for it
        await asyncio.gather(first, second, solo, later)
        assert (gate.together, gate.alone, gate.waiting_alone) == (0, False, 0)
        return order

    assert asyncio.run(scenario()) == ["a in (1 together, alone False)", "b in (2 together, alone False)", "b out",
                                       "a out", "suspect in (0 together, alone True)", "suspect out",
                                       "c in (1 together, alone False)", "c out"]


def test_two_calls_alone_go_one_after_the_other() -> None:
    async def scenario() -> int:
        gate = AloneGate()
        most = 0

        async def call() -> None:
            nonlocal most
            async with gate.forwarding(True, timeout_s=5):
                most = max(most, gate.together + 1)
                await asyncio.sleep(0.05)
                assert gate.alone and gate.together == 0

        await asyncio.gather(*(call() for _ in range(3)))
        return most

    assert asyncio.run(scenario()) == 1


def test_a_wait_past_its_hold_is_a_timeout_that_leaves_the_gate_as_it_was() -> None:
    async def scenario() -> None:
        gate = AloneGate()
        release = asyncio.Event()

        async def long_call() -> None:
            async with gate.forwarding(False, timeout_s=5):
                await release.wait()

        running = asyncio.create_task(long_call())
        await asyncio.sleep(0.01)
        with pytest.raises(TimeoutError):
            async with gate.forwarding(True, timeout_s=0.05):
                raise AssertionError("let through while a call was forwarded")
        assert (gate.together, gate.alone, gate.waiting_alone) == (1, False, 0)
        async with gate.forwarding(False, timeout_s=0.05):  # nothing waits to go alone any more: no wait
            assert gate.together == 2
        waiter = asyncio.create_task(gate.forwarding(True, timeout_s=5).__aenter__())
        await asyncio.sleep(0.01)
        assert gate.waiting_alone == 1
        waiter.cancel()  # its client went away while it waited
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert (gate.together, gate.alone, gate.waiting_alone) == (1, False, 0)
        release.set()
        await running
        assert (gate.together, gate.alone, gate.waiting_alone) == (0, False, 0)

    asyncio.run(scenario())
