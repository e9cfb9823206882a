"""A real MCP server (the official `mcp` SDK) for the gateway's tests and local runs.

Streamable HTTP at /mcp with sessions and resumable streams (events.py). Tools:
- add(a, b): a sum; echo(text): the text back; shout(text): upper case;
- slow_count(steps, delay_ms): counts, sending a progress notification per step, so its
  answer is an SSE stream whose events arrive over time;
- blob(kilobytes): a text of that size (for the gateway's event size cap).

Run: `python services/mcp/server.py` (PORT, default 8003; HOST, default 127.0.0.1).
"""

from __future__ import annotations

import os

import anyio
import uvicorn
from events import MemoryEventStore  # beside this file: it runs as a script
from mcp.server.mcpserver import Context, MCPServer

MAX_STEPS, MAX_DELAY_MS, MAX_KB = 1000, 5000, 4096

server = MCPServer("gateway-sim-tools")


@server.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@server.tool()
def echo(text: str) -> str:
    """Return the text unchanged."""
    return text


@server.tool()
def shout(text: str) -> str:
    """Return the text in upper case."""
    return text.upper()


@server.tool()
async def slow_count(steps: int, delay_ms: int, ctx: Context) -> str:
    """Count to `steps`, one step every `delay_ms`, reporting progress at each step."""
    steps, delay = min(max(steps, 0), MAX_STEPS), min(max(delay_ms, 0), MAX_DELAY_MS) / 1000
    for step in range(1, steps + 1):
        await anyio.sleep(delay)
        await ctx.report_progress(step, steps, f"step {step}")
    return f"counted to {steps}"


@server.tool()
def blob(kilobytes: int) -> str:
    """A text of `kilobytes` KiB (at most 4 MiB)."""
    return "x" * (min(max(kilobytes, 0), MAX_KB) * 1024)


def make_app(host: str = "127.0.0.1"):
    """The Starlette app: Streamable HTTP at /mcp, sessions on, events kept for resumption."""
    return server.streamable_http_app(event_store=MemoryEventStore(), host=host)


if __name__ == "__main__":
    bind = os.environ.get("HOST", "127.0.0.1")
    uvicorn.run(make_app(bind), host=bind, port=int(os.environ.get("PORT", "8003")),
                log_level=os.environ.get("LOG_LEVEL", "warning"))
