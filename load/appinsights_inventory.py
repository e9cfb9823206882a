"""What the gateway's worker sends to Application Insights, item by item, with nothing leaving
the machine: the gateway (this tree, or --base REV's) through the local Functions host and the
real worker, APPLICATIONINSIGHTS_CONNECTION_STRING pointing at tests/support/
appinsights_receiver.py, a recording backend; --requests POSTs (each with a sampled caller
`traceparent` when --caller-sampled, else none), then --wait seconds for the batches.

    .venv/bin/python load/appinsights_inventory.py [--base REV] [--ratio 0.1]
        [--requests 200] [--request-log true|false] [--live-subscribed] [--json FILE]

Prints the items by type per request, the requests/dependencies by name, the messages by
logger, the metrics by name and the Live Metrics calls. The same receiver and local-only
environment as feature_cost.py's Azure Monitor rows.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def inventory(items: list[dict], requests: int) -> dict:
    """Counts from the receiver's /items: by type, by name within each type, per request."""
    kinds = Counter(i["kind"] for i in items)
    named: dict[str, Counter] = {}
    for item in items:
        if item["kind"] == "Metric":
            for metric in item.get("metrics") or []:
                named.setdefault("Metric", Counter())[metric["name"]] += 1
        elif item["kind"] == "Message":
            logger = item["properties"].get("logger_name") or "(span event)"
            named.setdefault("Message", Counter())[logger] += 1
        else:
            named.setdefault(item["kind"], Counter())[item.get("name") or "?"] += 1
    return {"requests": requests, "items": len(items), "by_kind": dict(kinds),
            "per_request": {k: round(v / requests, 3) for k, v in kinds.items()},
            "by_name": {k: dict(v.most_common()) for k, v in named.items()}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default=None, help="the gateway of this commit (git archive)")
    parser.add_argument("--ratio", default="0.1", help="TELEMETRY_TRACE_SAMPLE_RATIO")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--request-log", default="true", help="TELEMETRY_REQUEST_LOG")
    parser.add_argument("--caller-sampled", action="store_true",
                        help="send a sampled caller traceparent with each request")
    parser.add_argument("--live-subscribed", action="store_true",
                        help="the receiver answers Live Metrics as if a portal viewer watched")
    parser.add_argument("--wait", type=float, default=8.0)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    from scripts.procs import HOST_CMD, PYTHON, WORKER_ENV, export_tree, free_port, spawn
    from tests.support.appinsights_receiver import LOCAL_ONLY_ENV, connection_string

    logs = Path(tempfile.mkdtemp(prefix="appinsights-inventory-"))
    procs = []
    try:
        port = free_port()
        extra = ["--live-subscribed"] if args.live_subscribed else []
        procs.append(spawn("receiver", [PYTHON, "-m", "tests.support.appinsights_receiver",
                                        "--port", str(port), *extra], port=port, log_dir=logs))
        receiver = procs[-1].url
        port = free_port()
        procs.append(spawn("recorder", [PYTHON, "-m", "tests.support.otlp_receiver", "--port",
                                        str(port)], port=port, log_dir=logs))
        recorder = procs[-1].url
        routes = [{"path": "/traced/*", "methods": ["POST"], "backend": "recorder",
                   "upstream_path": "/echo"}]
        port = free_port()
        cwd = export_tree(args.base, logs) if args.base else None
        procs.append(spawn("gateway", HOST_CMD, port=port, log_dir=logs, timeout=120, cwd=cwd,
                           env={**WORKER_ENV, **LOCAL_ONLY_ENV, "PORT": str(port),
                                "APPLICATIONINSIGHTS_CONNECTION_STRING":
                                    connection_string(receiver),
                                "TELEMETRY_TRACE_SAMPLE_RATIO": args.ratio,
                                "TELEMETRY_REQUEST_LOG": args.request_log,
                                "RATE_LIMIT_ENABLED": "false",
                                "GATEWAY_BACKENDS": json.dumps({"recorder": recorder}),
                                "GATEWAY_ROUTES": json.dumps(routes)}))
        gateway = procs[-1].url
        time.sleep(1.0)
        start = len(httpx.get(f"{receiver}/items").json())  # start-up items, reported apart
        with httpx.Client(timeout=10) as client:
            for n in range(args.requests):
                headers = {"traceparent": f"00-{n + 1:032x}-{0xabc:016x}-01"} \
                    if args.caller_sampled else {}
                assert client.post(f"{gateway}/traced/{n}", json={},
                                   headers=headers).status_code == 200
        time.sleep(args.wait)
        items = httpx.get(f"{receiver}/items").json()
        result = {"base": args.base, "ratio": args.ratio, "request_log": args.request_log,
                  "caller_sampled": args.caller_sampled, "startup_items": start,
                  **inventory(items[start:], args.requests),
                  "live": httpx.get(f"{receiver}/live").json(),
                  "other": httpx.get(f"{receiver}/other").json(), "logs": str(logs)}
    finally:
        for proc in reversed(procs):
            proc.stop()
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
