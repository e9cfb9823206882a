"""DeadlineBody cuts a read in progress at its deadline with its one timer (no timeout armed per
chunk): the read ends as UpstreamTimeout, the reading task keeps no cancellation of ours, and a
cancellation from anyone else stays a cancellation. The deadline is fired by hand (`_expire`,
what the loop's timer calls), so nothing here waits on a clock."""

import asyncio

import pytest

from function_app.adapters.deadline_body import DeadlineBody, Reads
from function_app.core.body_watch import CLIENT_CLOSED
from function_app.core.errors import UpstreamError, UpstreamTimeout


class Chunks:
    """An async iterator whose next chunk is whatever the test puts in `next`."""

    def __init__(self):
        self.next: asyncio.Future = asyncio.get_running_loop().create_future()
        self.waiting = asyncio.Event()
        self.taken = asyncio.Event()  # set once a chunk was taken

    def __aiter__(self):
        return self

    async def __anext__(self):
        self.waiting.set()
        chunk = await self.next
        self.next = asyncio.get_running_loop().create_future()
        self.waiting.clear()
        self.taken.set()
        return chunk


class DirectReads(Reads):
    """`Chunks` as an upstream client's read (b"" at the end), which DeadlineBody calls itself:
    its `__anext__` is never used."""

    __slots__ = ()

    def __init__(self, chunks: Chunks):
        async def read() -> bytes:
            return await chunks.__anext__() or b""

        super().__init__(read)

    async def __anext__(self):
        raise AssertionError("DeadlineBody reads a Reads through its read")


@pytest.fixture(params=["iterator", "reads"])
def kind(request) -> str:
    """Both chunk sources DeadlineBody takes: any async iterator, and a Reads."""
    return request.param


def body_of(chunks: Chunks, released: list, kind: str = "iterator") -> DeadlineBody:
    async def release():
        released.append(True)

    far = asyncio.get_running_loop().time() + 3600
    source = DirectReads(chunks) if kind == "reads" else chunks
    return DeadlineBody(source, far, release, lambda exc: UpstreamTimeout())


async def read_state(body: DeadlineBody) -> tuple[str, int]:
    """What one read gave, and the reading task's own cancellation count afterwards."""
    try:
        outcome = (await anext(body)).decode()
    except UpstreamTimeout:
        outcome = "timeout"
    return outcome, asyncio.current_task().cancelling()


async def test_chunks_pass_until_the_end_and_release_runs_once(kind):
    chunks, released = Chunks(), []
    body = body_of(chunks, released, kind)
    reader = asyncio.create_task(read_state(body))
    await chunks.waiting.wait()
    chunks.next.set_result(b"data: 1\n\n")
    assert await reader == ("data: 1\n\n", 0)
    reader = asyncio.create_task(anext(body, None))
    await chunks.waiting.wait()
    chunks.next.set_result(None)
    assert await reader is None
    assert released == [True]


async def test_a_read_in_progress_at_the_deadline_is_a_timeout_with_no_cancellation_left(kind):
    chunks, released = Chunks(), []
    body = body_of(chunks, released, kind)
    reader = asyncio.create_task(read_state(body))
    await chunks.waiting.wait()
    body._expire()  # the deadline timer fires while the read waits
    assert await reader == ("timeout", 0)
    assert released == [True]


async def test_a_chunk_ready_as_the_deadline_fires_still_ends_in_a_timeout_and_nothing_stray(kind):
    chunks, released = Chunks(), []
    body = body_of(chunks, released, kind)

    async def read_then_await():
        outcome = await read_state(body)
        await asyncio.sleep(0)  # a stray cancellation of ours would land here
        return outcome

    reader = asyncio.create_task(read_then_await())
    await chunks.waiting.wait()
    chunks.next.set_result(b"late")  # the reader is woken...
    body._expire()  # ...and the deadline fires before it runs
    assert await reader == ("timeout", 0)
    assert released == [True]


async def test_someone_elses_cancellation_during_a_read_stays_a_cancellation(kind):
    chunks, released = Chunks(), []
    body = body_of(chunks, released, kind)
    reader = asyncio.create_task(anext(body))
    await chunks.waiting.wait()
    reader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reader


async def test_a_deadline_while_nobody_reads_closes_the_exchange_and_the_next_read_times_out():
    chunks, released = Chunks(), []
    body = body_of(chunks, released)
    body._expire()
    await asyncio.sleep(0)  # the close it scheduled runs
    assert released == [True]
    with pytest.raises(UpstreamTimeout):
        await anext(body)


# The head: the same timer bounds the wait for the answer's head (one timer per exchange).

def armed() -> DeadlineBody:
    far = asyncio.get_running_loop().time() + 3600
    return DeadlineBody(None, far, None, lambda exc: UpstreamTimeout())


async def test_the_deadline_during_the_head_is_a_timeout_error_with_no_cancellation_left():
    body, head = armed(), asyncio.get_running_loop().create_future()

    async def wait_head():
        try:
            await body.head(head)
        except TimeoutError:
            return "timeout", asyncio.current_task().cancelling()

    waiter = asyncio.create_task(wait_head())
    await asyncio.sleep(0)
    body._expire()
    assert await waiter == ("timeout", 0)
    body.abandon()
    assert body._timer.cancelled()


async def test_a_head_in_time_then_attached_chunks_are_read_and_released_once():
    body, chunks, released = armed(), Chunks(), []
    head = asyncio.get_running_loop().create_future()
    head.set_result("answer")
    assert await body.head(head) == "answer"

    async def release():
        released.append(True)

    body.attach(chunks, release)
    reader = asyncio.create_task(anext(body, None))
    await chunks.waiting.wait()
    chunks.next.set_result(None)
    assert await reader is None
    assert released == [True] and body._timer.cancelled()


async def test_someone_elses_cancellation_during_the_head_stays_a_cancellation():
    body = armed()
    waiter = asyncio.create_task(body.head(asyncio.get_running_loop().create_future()))
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter


async def test_a_deadline_before_attach_with_nobody_waiting_releases_nothing():
    body = armed()
    body._expire()  # no reader, nothing attached: only marks the body expired
    await asyncio.sleep(0)
    assert body.expired and not body.closed


async def test_an_empty_chunk_from_an_iterator_is_skipped_and_a_reads_empty_read_is_the_end(kind):
    chunks, released = Chunks(), []
    body = body_of(chunks, released, kind)
    reader = asyncio.create_task(anext(body, None))
    await chunks.waiting.wait()
    chunks.next.set_result(b"")
    if kind == "iterator":  # skipped: the read goes on
        await chunks.taken.wait()
        await chunks.waiting.wait()
        chunks.next.set_result(b"data: 2\n\n")
        assert await reader == b"data: 2\n\n"
        assert released == []
    else:
        assert await reader is None
        assert released == [True]


def hooked(body: DeadlineBody, released: list, names: str) -> list:
    """End hooks named by the letters of `names`, each noting (name, error code or None, whether
    the exchange was released by then)."""
    seen: list = []
    for name in names:
        body.on_end(lambda error, name=name: seen.append(
            (name, error and error.code, bool(released))))
    return seen


async def test_end_hooks_run_once_in_order_after_the_release_when_the_body_ends(kind):
    chunks, released = Chunks(), []
    body = body_of(chunks, released, kind)
    seen = hooked(body, released, "ab")
    reader = asyncio.create_task(anext(body, None))
    await chunks.waiting.wait()
    chunks.next.set_result(None)
    assert await reader is None
    await body.aclose()  # a close after the end runs nothing again
    assert seen == [("a", None, True), ("b", None, True)]


async def test_end_hooks_get_the_error_the_body_raised():
    chunks, released = Chunks(), []
    body = body_of(chunks, released)  # translate: any failure is UpstreamTimeout
    seen = hooked(body, released, "a")
    reader = asyncio.create_task(anext(body))
    await chunks.waiting.wait()
    chunks.next.set_exception(TimeoutError())
    with pytest.raises(UpstreamTimeout):
        await reader
    assert seen == [("a", "upstream_timeout", True)]


async def test_a_closed_body_runs_a_hook_given_later_at_once_and_a_failing_hook_stops_none():
    chunks, released = Chunks(), []
    body = body_of(chunks, released)
    seen: list = []

    def broken(_error):
        raise RuntimeError("hook failed")

    body.on_end(broken)
    body.on_end(lambda error: seen.append(("after", error)))
    with pytest.raises(RuntimeError):
        await body.aclose()  # the client went away
    assert seen == [("after", None)] and released == [True]
    body.on_end(lambda error: seen.append(("late", error)))
    assert seen[-1] == ("late", None)


async def test_a_deadline_while_nobody_reads_ends_the_hooks_with_the_timeout():
    chunks, released = Chunks(), []
    body = body_of(chunks, released)
    seen = hooked(body, released, "a")
    body._expire()
    await asyncio.sleep(0)  # the close it scheduled runs
    assert seen == [("a", "upstream_timeout", True)]


# The body's BodyWatch (core/body_watch.py): the first chunk, then the end hooks and the watcher,
# told as the telemetry stage's `watched` layer told them, without the layer.


class Failing:
    """Chunks: "a", then `error` raised."""

    def __init__(self, error: BaseException):
        self.error, self.sent = error, False

    def __aiter__(self):
        return self

    async def __anext__(self):
        if not self.sent:
            self.sent = True
            return b"a"
        raise self.error


def watched_body(source, released: list, heard: list) -> DeadlineBody:
    async def release():
        released.append(True)

    far = asyncio.get_running_loop().time() + 3600
    body = DeadlineBody(source, far, release, lambda exc: UpstreamError())
    body.on_end(lambda failure: heard.append(("hook", failure and failure.code)))
    assert body.watch.take(lambda: heard.append("first"),
                           lambda error, exc: heard.append(("end", error, type(exc).__name__)))
    return body


async def test_a_watched_body_tells_its_first_chunk_once_then_the_end_after_its_release():
    released, heard = [], []

    async def two():
        yield b"a"
        yield b"b"

    body = watched_body(two(), released, heard)
    assert [chunk async for chunk in body] == [b"a", b"b"]
    assert released == [True]
    assert heard == ["first", ("hook", None), ("end", None, "NoneType")]


async def test_a_watched_body_closed_early_tells_client_closed():
    released, heard = [], []
    body = watched_body(Failing(UpstreamError()), released, heard)
    assert await anext(body) == b"a"
    await body.aclose()
    assert heard == ["first", ("hook", None), ("end", CLIENT_CLOSED, "NoneType")]


@pytest.mark.parametrize(("error", "told", "hook"), [
    (UpstreamError(), "upstream_unavailable", "upstream_unavailable"),
    (ConnectionResetError(), "upstream_unavailable", "upstream_unavailable"),  # translated
    (KeyError("x"), "KeyError", None),  # no known type: its name, and no failure for hooks
])
async def test_a_watched_body_that_fails_tells_how(error, told, hook):
    released, heard = [], []
    body = watched_body(Failing(error), released, heard)
    body._errors = (ConnectionResetError,)
    assert await anext(body) == b"a"
    with pytest.raises(BaseException):  # noqa: B017
        await anext(body)
    await body.aclose()  # what the app does with a body that raised
    assert heard[0] == "first" and heard[1] == ("hook", hook)
    assert heard[2][:2] == ("end", told) and heard[2][2] != "NoneType"
    assert released == [True]


async def test_a_deadline_while_nobody_reads_tells_a_timeout_at_once():
    released, heard = [], []
    body = watched_body(Chunks(), released, heard)
    body._expire()
    await asyncio.sleep(0)  # the close it scheduled runs
    assert heard == [("hook", "upstream_timeout"), ("end", "upstream_timeout", "UpstreamTimeout")]


async def test_after_its_end_a_body_runs_a_new_end_hook_at_once_and_refuses_a_watcher():
    chunks, released, failures = Chunks(), [], []
    body = body_of(chunks, released)
    body._expire()
    await asyncio.sleep(0)
    body.on_end(failures.append)
    assert [type(f).__name__ for f in failures] == ["UpstreamTimeout"]
    assert not body.watch.take(lambda: None, lambda error, exc: None)  # a layer sees the end
