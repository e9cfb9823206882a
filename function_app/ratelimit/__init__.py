"""Rate limiting, requests and tokens, in one place.

Pure: limits (limits, scoped limits, decisions), bucket (token bucket maths), demand (observed
rate), lease (shares of a shared row and the overshoot bound), scopes (which request limits
apply), tokens (which token limits apply to a completion), keys (storage keys of the shared
rows), store (the storage interfaces), headers and token_headers (what clients are told).
Stateful, over those interfaces only: engine (what both modes share), limiter (lease mode) with
config, counters, guarded, judge, keystate, leaser, maintenance, sweeper; tally_limiter,
tally_sync and tally_aggregator (tally mode, its maths in tally); modes (picks one for
RATE_LIMIT_SYNC); overrides (limits read from the overrides table). stage: the pipeline stage
for request limits. The Table Storage and memory implementations of the store live in
adapters/limitstore_*; the OpenAI stage reserves and settles tokens through openai/bill.py.
"""
