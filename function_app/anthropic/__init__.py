"""Anthropic's Messages API wire format: token estimates (estimate.py), usage in answers and
streams (usage.py, stream.py), the error shape and stream failures (errors.py), and the stage
that routes by model and reserves and settles tokens (stage.py), on the OpenAI package's bill."""
