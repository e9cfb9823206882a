"""core/body_watch: one watcher hooks into a body without a layer; a second one is refused (and
the telemetry stage then wraps the body as before); stepping the body by hand still works."""

from function_app.core.body_watch import CLIENT_CLOSED, BodyWatch, WatchedBody


async def _told(watch: BodyWatch, seen: list):
    """A generator that reports to `watch` as the bill's does."""
    ended = CLIENT_CLOSED
    try:
        for piece in (b"a", b"b"):
            watch.chunk_out()
            yield piece
        ended = None
    finally:
        watch.ended(ended, None)
        seen.append("closed")


async def test_one_watcher_hears_the_first_chunk_once_and_the_end():
    seen, heard = [], []
    watch = BodyWatch()
    body = WatchedBody(_told(watch, seen), watch)
    assert watch.take(lambda: heard.append("first"), lambda e, x: heard.append(("end", e, x)))
    assert not watch.take(lambda: None, lambda e, x: None)  # one watcher only
    assert [chunk async for chunk in body] == [b"a", b"b"]
    assert heard == ["first", ("end", None, None)] and seen == ["closed"]


async def test_stepped_by_hand_and_closed_early_it_tells_client_closed():
    seen, heard = [], []
    watch = BodyWatch()
    body = WatchedBody(_told(watch, seen), watch)
    watch.take(lambda: heard.append("first"), lambda e, x: heard.append(("end", e)))
    assert await anext(body) == b"a"
    await body.aclose()
    assert heard == ["first", ("end", CLIENT_CLOSED)] and seen == ["closed"]


async def test_a_body_nobody_watches_runs_as_it_is():
    seen = []
    watch = BodyWatch()
    assert [chunk async for chunk in WatchedBody(_told(watch, seen), watch)] == [b"a", b"b"]
    assert seen == ["closed"]
