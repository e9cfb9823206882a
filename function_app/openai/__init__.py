"""The OpenAI wire format and its billing: token estimates, usage in answers and SSE streams, the
error shape, the x-ratelimit-* headers (pure functions), the token bill (bill.py) and the stage
that routes by model and reserves and settles tokens (stage.py)."""
