"""The python and node simulators give the same answers, vectors and errors to the same request."""

from __future__ import annotations

import httpx
import pytest

from .conftest import BASE_ENV, SimPool
from .sse import read_stream

REQUESTS = [
    ("/v1/chat/completions", {"model": "m", "messages": [
        {"role": "system", "content": "Sé breve 🙂"},
        {"role": "user", "content": "  tabs\tand\nnewlines  "},
    ]}),
    ("/v1/chat/completions", {"model": "m", "max_tokens": 5, "messages": [
        {"role": "user", "content": [{"type": "text", "text": "part one"},
                                     {"type": "image_url", "image_url": {"url": "x"}}]},
    ]}),
    ("/v1/completions", {"model": "m", "prompt": ["naïve café"], "max_completion_tokens": 7}),
    ("/v1/embeddings", {"model": "m", "input": ["", "😀 emoji", "x" * 1000]}),
    ("/v1/embeddings", {"model": "m", "input": "alpha", "encoding_format": "base64"}),
]


def comparable(body: dict) -> dict:
    """The body without the fields that identify one response (id and creation time)."""
    return {key: value for key, value in body.items() if key not in ("id", "created")}


@pytest.fixture(scope="module")
def both(sim_pool: SimPool) -> list[str]:
    return [sim_pool.url(kind, **BASE_ENV) for kind in ("python", "node")]


@pytest.mark.parametrize(("path", "body"), REQUESTS)
def test_same_answer(both: list[str], path: str, body: dict) -> None:
    python, node = (httpx.post(url + path, json=body, timeout=10) for url in both)
    assert python.status_code == node.status_code == 200
    assert comparable(python.json()) == comparable(node.json())


def test_same_stream(both: list[str]) -> None:
    body = {"messages": [{"role": "user", "content": "a b c"}], "max_tokens": 6, "model": "m",
            "stream": True, "stream_options": {"include_usage": True}}
    streams = []
    for url in both:
        with httpx.Client(base_url=url, timeout=10) as client:
            streams.append(read_stream(client, "/v1/chat/completions", body))
    python, node = streams
    assert [comparable(c) for c in python.chunks] == [comparable(c) for c in node.chunks]


@pytest.mark.parametrize("content", [b"{oops", b"[]", b'{"messages": "no"}'])
def test_same_bad_request(both: list[str], content: bytes) -> None:
    python, node = (
        httpx.post(f"{url}/v1/chat/completions", content=content, timeout=10) for url in both)
    assert python.status_code == node.status_code == 400
    assert python.json() == node.json()


def test_same_slow_answer(both: list[str]) -> None:
    python, node = (httpx.get(f"{url}/slow", timeout=10).json() for url in both)
    assert {k: v for k, v in python.items() if k != "service"} == \
        {k: v for k, v in node.items() if k != "service"}
