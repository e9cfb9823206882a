"""Rate limiting, requests and tokens, in one place.

Shared, pure: limits (limits, scoped limits, decisions), bucket (token bucket maths), scopes
(which request limits apply), tokens (which token limits apply to a completion), store (the
storage interfaces), headers and token_headers (what clients are told), judge (verdicts into one
decision). Shared, stateful: engine (what both modes share) with config, counters, guarded;
modes (picks one for RATE_LIMIT_SYNC); overrides (limits read from the overrides table); stage
(the pipeline stage for request limits). The two modes are subpackages: lease/ and tally/.
The Table Storage and memory implementations of the store live in adapters/limitstore_*; the
OpenAI stage reserves and settles tokens through openai/bill.py.
"""
