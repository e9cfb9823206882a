"""Times every lease inside a running worker (load/probe_worker_leases.py). A benchmark aid only:
the product never loads it. With WORKER_LEASE_LOG set, a thread waits for the lease module to be
imported, then wraps `Leaser.lease` so each lease appends one line to that file: the wall-clock
start, its round trip in ms, whether requests were waiting, and its target."""

import os

if os.environ.get("WORKER_LEASE_LOG"):
    import sys
    import threading
    import time

    def _patch() -> None:
        while "function_app.ratelimit.lease.leaser" not in sys.modules:
            time.sleep(0.05)
        leaser = sys.modules["function_app.ratelimit.lease.leaser"]
        lease = leaser.Leaser.lease
        out = open(os.environ["WORKER_LEASE_LOG"], "a", buffering=1)

        async def timed(self, ks, target, cost):
            began, waited, wall = time.perf_counter(), ks.waiting > 0, time.time()
            try:
                return await lease(self, ks, target, cost)
            finally:
                out.write(f"{wall:.3f} {(time.perf_counter() - began) * 1000:.1f} "
                          f"{int(waited)} {target:.0f} {ks.scope}\n")

        leaser.Leaser.lease = timed

    threading.Thread(target=_patch, daemon=True).start()
