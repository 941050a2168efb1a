"""`TaskGate`, the store's turns for asyncio tasks, on the pools' `Handover`: first come, first
served, and no turn lost or made when a waiter is cancelled."""

from __future__ import annotations

import asyncio

from redis_sessions.store._base import TaskGate


def test_task_gate_hands_turns_in_order_and_passes_on_a_cancelled_waiters_turn() -> None:
    async def scenario() -> None:
        gate = TaskGate(1, wait=5.0)
        assert await gate.acquire()
        first = asyncio.ensure_future(gate.acquire())
        second = asyncio.ensure_future(gate.acquire())
        await asyncio.sleep(0)  # both queue (a scheduling step, not a timed wait)
        gate.release()  # handed to `first`...
        first.cancel()  # ...which is cancelled before it runs
        (outcome,) = await asyncio.gather(first, return_exceptions=True)
        if outcome is True:  # it kept the turn it was handed (wait_for may swallow a cancel)
            gate.release()
        else:  # it passed the turn on
            assert isinstance(outcome, asyncio.CancelledError)
        assert await second is True  # either way no turn is lost
        gate.release()
        assert await gate.acquire()
        assert gate._free == 0 and not gate._handover.waiting  # exactly one turn, none lost or made
        short = TaskGate(1, wait=0.05)
        assert await short.acquire() and not await short.acquire()

    asyncio.run(scenario())
