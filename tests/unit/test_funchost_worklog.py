"""The worker's buffered log handler: INFO lines wait for the timer, WARNING lines do not."""

from __future__ import annotations

import asyncio
import logging

from funchost.worklog import FLUSH_SECONDS, FORMAT, BufferedStderrHandler, SecondCachedFormatter
from tests.support.waiting import wait_until


def _logger(handler: logging.Handler) -> logging.Logger:
    log = logging.getLogger("test.worklog")
    log.handlers[:] = [handler]
    log.propagate = False
    log.setLevel(logging.INFO)
    return log


def test_info_waits_for_the_timer_and_warning_flushes_at_once(capfd):
    async def run() -> None:
        log = _logger(BufferedStderrHandler())
        log.info("line one")
        log.info("line two")
        assert "line one" not in capfd.readouterr().err  # buffered, not yet written
        err = ""

        async def flushed() -> bool:  # by the handler's own timer (FLUSH_SECONDS), on the loop
            nonlocal err
            err += capfd.readouterr().err
            return "line one" in err and "line two" in err

        await wait_until(flushed, within_s=FLUSH_SECONDS * 25)
        log.info("quiet")
        log.warning("loud")
        err = capfd.readouterr().err
        assert "quiet" in err and "loud" in err  # a warning flushes what came before it too

    asyncio.run(run())


def test_without_an_event_loop_every_line_is_flushed(capfd):
    log = _logger(BufferedStderrHandler())
    log.info("from a thread with no loop")
    assert "from a thread with no loop" in capfd.readouterr().err


def test_the_cached_time_formats_as_logging_does():
    cached, plain = SecondCachedFormatter(), logging.Formatter(FORMAT)
    for created in (1_700_000_000.123, 1_700_000_000.987, 1_700_000_001.5, 1_700_000_000.25):
        record = logging.makeLogRecord({"name": "n", "levelname": "INFO", "msg": "m",
                                        "created": created, "msecs": (created % 1) * 1000})
        assert cached.format(record) == plain.format(record)
