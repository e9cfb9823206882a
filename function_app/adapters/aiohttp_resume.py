"""aiohttp's client connections without a resume call per body read when reading never paused.

aiohttp 3.14.5's StreamReader calls its protocol's `resume_reading()` after every read that
leaves its buffer under the low-water mark: for a stream of small chunks, every chunk. When
reading was never paused, that call does nothing but cost: `ResponseHandler.resume_reading` ->
`BaseProtocol.resume_reading` -> `data_received(b"")` (the parser fed nothing) -> the
transport's `resume_reading` (not paused: returns). Four Python calls and two C calls of the
worker per streamed chunk (load/profile_streams.py --cprofile, docs/perf/pass9-chunk.md).

Why it is nothing in that version: a pause (`BaseProtocol.pause_reading`, the only caller of
the parser's `pause_reading`) sets the protocol's `_reading_paused`, and only `resume_reading`
or the connection's loss clears it. While it is clear the parser holds no bytes or
decompressed output back (its `_tail`, `_more_data_available` and `_eof_pending` are only left
set by a pause), so `data_received(b"")` parses nothing; a transport held for a buffer
(`_buffer_paused`) is not resumed by the call either. `QuietResumeHandler` skips the call then
and runs aiohttp's own whenever reading is paused.

This rests on aiohttp's private internals, so it applies only to the versions read
(TESTED_VERSIONS) and only when the connector still builds its protocols the way read
(`quiet_resume` checks both and otherwise leaves the connector as it was);
tests/unit/test_aiohttp_resume.py asserts that the pinned aiohttp takes this path.
"""

from __future__ import annotations

import functools

import aiohttp
from aiohttp.base_protocol import BaseProtocol
from aiohttp.client_proto import ResponseHandler

TESTED_VERSIONS = frozenset({"3.14.5"})  # the resume logic above was read in these


class QuietResumeHandler(ResponseHandler):
    """aiohttp's client protocol; `resume_reading` only when reading is paused (module doc)."""

    def resume_reading(self, resume_parser: bool = True) -> None:
        if self._reading_paused:
            ResponseHandler.resume_reading(self, resume_parser)


def _internals_as_read() -> bool:
    """The names the skip relies on are where they were read (module doc)."""
    return (aiohttp.__version__ in TESTED_VERSIONS
            and "_reading_paused" in BaseProtocol.__slots__
            and "resume_reading" in ResponseHandler.__dict__)


INTERNALS_AS_READ = _internals_as_read()  # once, at import


def quiet_resume(connector: aiohttp.BaseConnector) -> bool:
    """Make `connector`'s new connections QuietResumeHandlers when its protocol factory is
    aiohttp's own (`partial(ResponseHandler, loop=...)`) and the internals are as read; True
    when it did. Otherwise the connector is left unchanged (aiohttp's own path, one resume
    call per read). Before the connector's first connection."""
    factory = getattr(connector, "_factory", None)
    if not (INTERNALS_AS_READ and isinstance(factory, functools.partial)
            and factory.func is ResponseHandler and not factory.args
            and set(factory.keywords) == {"loop"}):
        return False
    connector._factory = functools.partial(  # type: ignore[attr-defined]
        QuietResumeHandler, loop=factory.keywords["loop"])
    return True
