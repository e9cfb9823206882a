"""The OpenAI wire format, as pure functions: token estimates, usage in answers and SSE streams,
the error shape and the x-ratelimit-* headers. No I/O; stages/openai.py wires them in."""
