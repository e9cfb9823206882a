"""Times every lease inside a running worker (load/probe_worker_leases.py). A benchmark aid only:
the product never loads it. With WORKER_LEASE_LOG set, a thread waits for the lease module to be
imported, then wraps `Leaser.lease` so each lease appends one line to that file: the wall-clock
start, its round trip in ms, whether requests were waiting, its target and scope, then a JSON
object of where the time went (ms from the lease's start, see `_phases`):

- `queued`: from the limiter's `create_task` to the lease's first step (the loop's schedule),
- per Table call (`calls`): the SDK's pipeline before the transport (`send`), aiohttp's
  request start, the connection (`reuse` of a pooled one, or `connect_start`/`connect_end`
  for a new TCP connection, with `dns_*` if a name was resolved), the request written
  (`sent`), the response's headers (`end`), the transport's return (`back`) and the SDK's
  return (`done`: response parsing and the pipeline's policies after the transport),
- `lag`: the longest lateness of a 1 ms ticker in the same loop while the lease ran (the
  loop busy with other work: any phase above may include it).

With WORKER_LEASE_STALLS set too, a thread samples the loop thread's stack every millisecond
while the ticker is over 3 ms late and appends `wall innermost-frames` lines to
WORKER_LEASE_LOG + ".stalls": what ran while the loop could not serve the lease.
"""

import os

if os.environ.get("WORKER_LEASE_LOG"):
    import asyncio
    import contextvars
    import json
    import sys
    import threading
    import time
    from collections import deque

    _current: contextvars.ContextVar = contextvars.ContextVar("p8_lease", default=None)
    _ticks: deque = deque(maxlen=50_000)  # (tick start, lateness s)
    _created: dict[int, float] = {}
    _ticker: list = []

    _last_tick = [0.0]

    def _where(frame) -> str:
        names = []
        while frame is not None and len(names) < 6:
            code = frame.f_code
            names.append(f"{code.co_filename.rsplit('/', 2)[-2:][-1]}:{code.co_name}")
            frame = frame.f_back
        return "<".join(names)

    def _sample(loop_thread: int, path: str) -> None:
        with open(path, "a", buffering=1) as stalls:
            while True:
                time.sleep(0.001)
                if time.perf_counter() - _last_tick[0] > 0.003:
                    frame = sys._current_frames().get(loop_thread)
                    stalls.write(f"{time.time():.4f} {_where(frame)}\n")

    async def _tick() -> None:
        if os.environ.get("WORKER_LEASE_STALLS"):
            _last_tick[0] = time.perf_counter()
            threading.Thread(target=_sample, daemon=True, args=(
                threading.get_ident(), os.environ["WORKER_LEASE_LOG"] + ".stalls")).start()
        while True:
            _last_tick[0] = time.perf_counter()
            began = time.perf_counter()
            await asyncio.sleep(0.001)
            _ticks.append((began, time.perf_counter() - began - 0.001))

    def _mark(name: str) -> None:
        rec = _current.get()
        if rec is not None and rec["calls"]:
            rec["calls"][-1].setdefault(name, time.perf_counter())

    def _trace_config():
        import aiohttp

        config = aiohttp.TraceConfig()
        signals = {
            "on_request_start": "request", "on_connection_queued_start": "pool_wait_start",
            "on_connection_queued_end": "pool_wait_end", "on_connection_reuseconn": "reuse",
            "on_connection_create_start": "connect_start",
            "on_connection_create_end": "connect_end",
            "on_dns_resolvehost_start": "dns_start", "on_dns_resolvehost_end": "dns_end",
            "on_dns_cache_hit": "dns_hit", "on_request_headers_sent": "sent",
            "on_response_chunk_received": "first_chunk", "on_request_end": "end",
        }
        for signal, name in signals.items():
            async def hook(_session, _ctx, _params, name=name):
                _mark(name)
            getattr(config, signal).append(hook)
        config.freeze()
        return config

    def _patch_transport() -> None:
        from azure.core.pipeline.transport import _aiohttp

        transport = _aiohttp.AioHttpTransport
        open_, send = transport.open, transport.send
        config = _trace_config()

        async def traced_open(self):
            await open_(self)
            configs = self.session._trace_configs
            if config not in configs:
                configs.append(config)

        async def timed_send(self, request, **kwargs):
            rec = _current.get()
            if rec is not None:
                rec["calls"].append({"send": time.perf_counter(), "method": request.method})
            try:
                return await send(self, request, **kwargs)
            finally:
                _mark("back")

        transport.open, transport.send = traced_open, timed_send

    def _patch_limiter() -> None:
        limiter = sys.modules["function_app.ratelimit.lease.limiter"]
        start = limiter.Limiter._start_fetch

        def start_fetch(self, ks, cost):
            _created[id(ks)] = time.perf_counter()
            return start(self, ks, cost)

        limiter.Limiter._start_fetch = start_fetch

    def _phases(rec: dict, began: float, ended: float, created: float | None) -> str:
        ms = lambda t: round((t - began) * 1000, 2)  # noqa: E731
        calls = []
        for call in rec["calls"]:
            calls.append({k: (v if k == "method" else ms(v)) for k, v in call.items()})
        lag = 0.0
        for t, late in reversed(_ticks):  # newest first: stop at the lease's start
            if t < began - 0.002:
                break
            if t <= ended:
                lag = max(lag, late)
        out = {"calls": calls, "lag": round(lag * 1000, 2)}
        if created is not None:
            out["queued"] = round((began - created) * 1000, 2)
        return json.dumps(out, separators=(",", ":"))

    def _patch() -> None:
        def loaded(module: str, name: str) -> bool:  # imported, not just being imported
            return hasattr(sys.modules.get(f"function_app.ratelimit.lease.{module}"), name)

        while not (loaded("leaser", "Leaser") and loaded("limiter", "Limiter")):
            time.sleep(0.05)
        time.sleep(0.05)  # the rest of the module's body
        leaser = sys.modules["function_app.ratelimit.lease.leaser"]
        lease = leaser.Leaser.lease
        out = open(os.environ["WORKER_LEASE_LOG"], "a", buffering=1)
        _patch_transport()
        _patch_limiter()

        async def timed(self, ks, target, cost):
            if not _ticker:
                _ticker.append(asyncio.get_running_loop().create_task(_tick()))
            began, waited, wall = time.perf_counter(), ks.waiting > 0, time.time()
            created = _created.pop(id(ks), None)
            rec = {"calls": []}
            token = _current.set(rec)
            try:
                return await lease(self, ks, target, cost)
            finally:
                _mark("done")
                _current.reset(token)
                ended = time.perf_counter()
                out.write(f"{wall:.3f} {(ended - began) * 1000:.1f} {int(waited)} "
                          f"{target:.0f} {ks.scope} {_phases(rec, began, ended, created)}\n")

        leaser.Leaser.lease = timed

    threading.Thread(target=_patch, daemon=True).start()
