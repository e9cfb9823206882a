"""The in-flight bound (adapters/upstream_slots.py): at most N exchanges, waiters served first
come first served, a wait that ends (timeout or cancellation) never keeps or loses a slot."""

import asyncio

import pytest

from function_app.adapters.upstream_slots import Slots
from function_app.core.errors import Overloaded


async def test_slots_are_taken_at_once_until_none_is_left():
    slots = Slots(2)
    assert slots.take_now() and slots.take_now()
    assert not slots.take_now()
    slots.free()
    assert slots.take_now()


async def test_unbounded_slots_never_refuse():
    slots = Slots(None)
    assert all(slots.take_now() for _ in range(1000))
    slots.free()  # nothing to give back


async def test_a_wait_past_its_time_is_overloaded_with_retry_after_and_keeps_no_slot():
    slots = Slots(1)
    await slots.take(1.0)
    with pytest.raises(Overloaded) as raised:
        await slots.take(0.01)
    assert raised.value.headers == {"Retry-After": "1"}
    slots.free()
    assert slots.take_now()  # the timed-out waiter is gone: the slot is free at once


async def test_a_freed_slot_goes_to_the_first_waiter_and_waiters_come_before_newcomers():
    slots = Slots(1)
    assert slots.take_now()
    order = []

    async def wait(name):
        await slots.take(5.0)
        order.append(name)

    first, second = asyncio.create_task(wait("a")), asyncio.create_task(wait("b"))
    await asyncio.sleep(0)
    slots.free()
    assert not slots.take_now()  # the slot went to "a", not to a newcomer
    await asyncio.sleep(0)
    assert order == ["a"]
    slots.free()
    await asyncio.gather(first, second)
    assert order == ["a", "b"]
    slots.free()
    assert slots.take_now() and not slots.take_now()


async def test_a_cancelled_waiter_neither_keeps_nor_loses_a_slot():
    slots = Slots(1)
    assert slots.take_now()
    waiter = asyncio.create_task(slots.take(5.0))
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    slots.free()
    assert slots.take_now()  # not held back for the cancelled waiter


async def test_a_slot_handed_to_a_waiter_whose_wait_just_ended_passes_on():
    slots = Slots(1)
    assert slots.take_now()
    late = asyncio.create_task(slots.take(5.0))
    next_one = asyncio.create_task(slots.take(5.0))
    await asyncio.sleep(0)
    slots.free()  # handed to `late`...
    late.cancel()  # ...which is cancelled before it runs again
    with pytest.raises(asyncio.CancelledError):
        await late
    await asyncio.wait_for(next_one, 1.0)  # the slot went on to the next waiter
    assert not slots.take_now()
    slots.free()
    assert slots.take_now()
