"""Best-of-7 process CPU per call of the request log's write (through the local worker's log
handler, funchost/worklog.py, writing to /dev/null) and of one request's id-only span work
(request span, attempt observer, trace ids), for the tree in the current directory. Run it from
another tree (with this tree's script and .venv) to compare the two in one sitting:

    .venv/bin/python load/profile_telemetry.py
    (cd /tmp/base && /path/to/.venv/bin/python /path/to/load/profile_telemetry.py)
"""

from __future__ import annotations

import os
import sys
import time
import timeit

sys.path.insert(0, os.getcwd())  # the tree measured is the current directory's


def main() -> None:
    from funchost import worklog
    from function_app.http.headers import Headers
    from function_app.http.messages import GatewayRequest
    from function_app.telemetry.ids import IdOnlyTracer
    from function_app.telemetry.request_log import RequestLog, RequestRecord
    from function_app.telemetry.tracing import attempt_observer, start_request_span, trace_ids

    handler = worklog.install()
    handler.stream = open(os.devnull, "w")
    log = RequestLog()
    record = RequestRecord(request_id="r-1", trace_id="0af7651916cd43dd8448eb211c80319c",
                           method="POST", route="/infer/node", backend="node", model="-",
                           status=200, latency_ms=1.2345, client="c0ffee")
    tracer = IdOnlyTracer()
    request = GatewayRequest(method="POST", path="/infer/node", query="",
                             headers=Headers([("content-type", "application/json")]), body=b"",
                             client_host="127.0.0.1")

    def spans() -> None:
        span = start_request_span(tracer, request)
        attempt_observer(tracer, span, lambda url: "node", lambda *args: None)
        trace_ids(span)

    for name, fn in (("request log write", lambda: log.write(record)),
                     ("request span + attempt observer + trace ids", spans)):
        best = min(timeit.repeat(fn, number=20000, repeat=7, timer=time.process_time)) / 20000
        print(f"{name}: {best * 1e6:.2f} us")


if __name__ == "__main__":
    main()
