"""Guardrails: checks on what goes into a model and what comes out of it (docs/GUARDRAILS.md).

    policy.py     which checks run for a request (route, model, the key's named policy),
                  their actions (block, redact, annotate), thresholds and fail mode: pure
    pii.py        personal data and secrets found and redacted offline (no model downloaded)
    patterns.py   custom PII patterns from settings, refused when they could backtrack badly
    safety.py     the Content Safety interface (analyze text, shield prompt) and its results
    guarded.py    that interface behind a short cache, a rate limit and a health state
    texts.py      the texts of an OpenAI or JSON request (prompt, documents) and their rewrite
    verdict.py    one request's input check: checks run concurrently, findings to a verdict
    output.py     a whole answer checked; stream.py: a stream released window by window
    stage.py      the pipeline stage (before the OpenAI stage: nothing is billed for a block)
    errors.py     what a client sees; counts.py: checks and PII kinds counted; spans.py: traces

The HTTP client of Azure AI Content Safety lives in adapters/contentsafety_httpx.py, the wiring
in wiring/guardrails.py, the in-memory fake in tests/support/safety_fake.py.
"""
