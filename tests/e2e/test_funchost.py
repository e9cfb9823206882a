"""The local Functions host around the real worker: keys, limits, timeouts, errors, processes."""

import json
import os
import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import httpx
import pytest

from .conftest import start_gateway

pytestmark = pytest.mark.e2e


class Recorder(BaseHTTPRequestHandler):
    """A backend that records what reached it; `/slow` takes three seconds."""

    seen: ClassVar[list[dict]] = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        Recorder.seen.append({"path": self.path, "headers": dict(self.headers.items()),
                              "body": body.decode()})
        if self.path.startswith("/slow"):
            time.sleep(3)
        answer = b'{"ok": true}'
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def recorder():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def gateway_env(recorder: str, **extra: str) -> dict[str, str]:
    routes = [{"path": "/rec/*", "methods": ["POST"], "backend": "rec", "upstream_path": "/"}]
    return {"GATEWAY_BACKENDS": json.dumps({"rec": recorder}),
            "GATEWAY_ROUTES": json.dumps(routes), "RATE_LIMIT_ENABLED": "false", **extra}


@pytest.fixture(scope="module")
def keyed(recorder, log_dir):
    proc = start_gateway(log_dir, "gateway-keys", gateway_env(
        recorder, FUNCHOST_FUNCTION_KEYS="fkey-1,fkey-2", FUNCHOST_FUNCTION_TIMEOUT_S="1",
        FUNCHOST_HEADER_TIMEOUT_S="1"))
    yield proc
    proc.stop()


def test_with_keys_healthz_is_anonymous_and_other_routes_need_a_key(keyed):
    assert httpx.get(f"{keyed.url}/healthz", timeout=10).status_code == 200
    refused = httpx.post(f"{keyed.url}/rec/a", json={}, timeout=10)
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "unauthorized"
    assert refused.json()["error"]["request_id"] == refused.headers["x-request-id"]
    wrong = httpx.post(f"{keyed.url}/rec/a", json={}, headers={"x-functions-key": "nope"})
    assert wrong.status_code == 401


def test_a_key_opens_the_route_and_never_reaches_the_backend(keyed):
    Recorder.seen.clear()
    by_header = httpx.post(f"{keyed.url}/rec/h?x=1", json={"n": 1},
                           headers={"x-functions-key": "fkey-1"}, timeout=10)
    by_query = httpx.post(f"{keyed.url}/rec/q?code=fkey-2&y=2", json={"n": 2}, timeout=10)
    assert by_header.status_code == 200 and by_query.status_code == 200
    assert [s["path"] for s in Recorder.seen] == ["/h?x=1", "/q?y=2"]
    for seen in Recorder.seen:
        assert "fkey" not in json.dumps(seen)
        assert "x-functions-key" not in {k.lower() for k in seen["headers"]}


def test_the_invocation_id_and_forwarded_headers_reach_the_app(keyed):
    Recorder.seen.clear()
    httpx.post(f"{keyed.url}/rec/f", json={}, headers={
        "x-functions-key": "fkey-1", "x-forwarded-for": "6.6.6.6",
        "x-forwarded-host": "evil.example", "x-forwarded-proto": "https"})
    headers = {k.lower(): v for k, v in Recorder.seen[0]["headers"].items()}
    # Set from what the host saw, never the client's values (the Functions host does the same).
    assert headers["x-forwarded-proto"] == "http"
    assert headers["x-forwarded-for"] == "127.0.0.1"
    assert headers["x-forwarded-host"] != "evil.example"
    # The host's invocation id (the gateway passes it on today, which helps correlation).
    assert len(headers["x-ms-invocation-id"]) == 36


def test_function_timeout_gives_a_json_504(keyed):
    answer = httpx.post(f"{keyed.url}/rec/slow", json={}, headers={"x-functions-key": "fkey-1"},
                        timeout=10)
    assert answer.status_code == 504
    assert answer.json()["error"]["code"] == "function_timeout"


def raw_exchange(port: int, data: bytes, wait: float = 5) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


def test_too_many_or_too_large_headers_get_431(keyed):
    many = b"".join(b"x-h%d: v\r\n" % i for i in range(101))
    answer = raw_exchange(keyed.port, b"GET /healthz HTTP/1.1\r\nhost: a\r\n" + many + b"\r\n")
    assert answer.startswith(b"HTTP/1.1 431") and b'"headers_too_large"' in answer
    big = b"x-big: " + b"a" * 40000 + b"\r\n"
    answer = raw_exchange(keyed.port, b"GET /healthz HTTP/1.1\r\nhost: a\r\n" + big + b"\r\n")
    assert answer.startswith(b"HTTP/1.1 431")


def test_a_request_line_over_8_kib_gets_414(keyed):
    answer = raw_exchange(keyed.port, b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nhost: a\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 414") and b'"code": "uri_too_long"' in answer


def test_an_unparsable_request_gets_a_json_400(keyed):
    answer = raw_exchange(keyed.port, b"NOT HTTP AT ALL\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400") and b'"code": "bad_request"' in answer


def test_headers_that_never_finish_get_408(keyed):
    answer = raw_exchange(keyed.port, b"GET /healthz HTTP/1.1\r\nhost: a\r\nx-slow: 1\r\n")
    assert answer.startswith(b"HTTP/1.1 408") and b'"request_timeout"' in answer


def test_a_newline_in_the_path_makes_no_redirect(keyed):
    answer = httpx.get(f"{keyed.url}/healthz%0a", timeout=10, follow_redirects=False)
    assert answer.status_code not in (301, 302, 307, 308) and "location" not in answer.headers
    assert answer.headers["content-type"].startswith("application/json")


def test_the_worker_is_a_process_of_its_own_named_as_the_worker(keyed):
    children = [p for p in Path("/proc").iterdir() if p.name.isdigit()
                and _parent(p) == keyed.popen.pid]
    commands = [(p / "cmdline").read_bytes().replace(b"\0", b" ") for p in children]
    assert any(b"-m funchost.worker" in c for c in commands), commands


def _parent(proc_dir: Path) -> int:
    try:
        return int((proc_dir / "stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return -1


def test_a_body_over_the_host_limit_gets_413(recorder, log_dir):
    proc = start_gateway(log_dir, "gateway-small", gateway_env(
        recorder, FUNCTIONS_REQUEST_BODY_SIZE_LIMIT="1000", MAX_BODY_BYTES="100000"))
    try:
        answer = httpx.post(f"{proc.url}/rec/b", content=b"x" * 2000, timeout=10)
        assert answer.status_code == 413
        assert answer.json()["error"]["code"] == "payload_too_large"
        # Without a length (chunked), the limit holds while the body streams through.
        chunked = httpx.post(f"{proc.url}/rec/b", content=iter([b"y" * 600] * 3), timeout=10)
        assert chunked.status_code == 413
        assert chunked.json()["error"]["code"] == "payload_too_large"
    finally:
        proc.stop()


def test_a_chunked_upload_streams_through_to_the_backend(keyed):
    Recorder.seen.clear()
    parts = [b'{"part": "', b"z" * 70000, b'"}']
    answer = httpx.post(f"{keyed.url}/rec/up", content=iter(parts), timeout=10,
                        headers={"x-functions-key": "fkey-1", "content-type": "application/json"})
    assert answer.status_code == 200
    assert Recorder.seen[0]["body"] == b"".join(parts).decode()


def test_sigterm_stops_host_and_worker(recorder, log_dir):
    proc = start_gateway(log_dir, "gateway-stop", gateway_env(recorder))
    worker = next(p for p in Path("/proc").iterdir()
                  if p.name.isdigit() and _parent(p) == proc.popen.pid)
    proc.popen.send_signal(signal.SIGTERM)  # the host alone, not its process group
    assert proc.popen.wait(timeout=20) == 0
    deadline = time.monotonic() + 10
    while (worker / "stat").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not (worker / "stat").exists()


def test_a_killed_worker_is_restarted_and_the_gap_answers_503_json(recorder, log_dir):
    proc = start_gateway(log_dir, "gateway-restart", gateway_env(recorder))
    try:
        worker = next(p for p in Path("/proc").iterdir()
                      if p.name.isdigit() and _parent(p) == proc.popen.pid)
        os.kill(int(worker.name), signal.SIGKILL)
        gaps = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            answer = httpx.post(f"{proc.url}/rec/r", json={}, timeout=5)
            if answer.status_code == 200:
                break
            gaps.append((answer.status_code, answer.json()["error"]["code"]))
            time.sleep(0.05)
        assert answer.status_code == 200  # within 10 s, through a new worker
        assert set(gaps) <= {(503, "worker_unavailable")}, gaps
        assert "killed by SIGKILL; restarting it" in proc.log.read_text()
    finally:
        proc.stop()


def test_the_host_holds_its_port_before_the_worker_starts(recorder, log_dir, tmp_path):
    """The host binds its port first: the worker's HTTP server takes a free port of its own as
    it starts, and with the host binding only once the worker was ready, that port could be
    the host's (the host then failed with 'address already in use'). A request sent while the
    worker is still starting waits and is answered once it is ready."""
    from scripts.procs import HOST_CMD, WORKER_ENV, free_port, spawn

    port, go = free_port(), tmp_path / "go"
    # The worker's command waits until the test lets it go: no clock decides the order.
    held = f"sh -c 'while [ ! -e {go} ]; do sleep 0.05; done; exec \"$@\"' sh"
    env = {**WORKER_ENV, **gateway_env(recorder), "PORT": str(port),
           "FUNCHOST_WORKER_WRAPPER": held}
    proc = spawn("host-port-first", HOST_CMD, port=port, log_dir=log_dir, env=env,
                 ready_path=None, timeout=60)  # ready = the port accepts connections
    try:
        assert "ready at" not in proc.log.read_text()  # the worker has not started
        with httpx.Client(timeout=60) as client:
            with ThreadPoolExecutor(1) as pool:
                waiting = pool.submit(client.get, f"http://127.0.0.1:{port}/healthz")
                go.touch()
                answer = waiting.result()
        assert answer.status_code == 200
        log = proc.log.read_text()
        assert "ready at" in log and "address already in use" not in log
    finally:
        proc.stop()
