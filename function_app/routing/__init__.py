"""Routing: which backend serves a request, and the attempt loop that gets its answer.

Tables (parsed once from settings, pure data):
- routes.py         the route table (GATEWAY_ROUTES), route kinds, the seed and built-in routes
- model_routes.py   the model table (MODEL_ROUTES, DEFAULT_MODEL_BACKEND, MODEL_API_KEYS)
- backends.py       backends given as objects in GATEWAY_BACKENDS (wire, credentials)
- pools.py          members, targets and plans (the route table's and the model table's pools)
Pure policies (no I/O; time and randomness are passed in):
- policy.py         `pick_backend` (priority, weight, power of two choices), `decide`, `next_delay`
- budget.py         the sliding-window retry budget
- breaker.py        the breaker state machine of one backend
Around them, still free of any I/O library:
- store.py          the BreakerStore and ProbeStore ports (adapters/breakerstore_table.py; the
                    in-memory one for tests: tests/support/breakerstore_memory.py)
- breakers.py       breakers shared across instances through the store, read through a short cache
- probes.py         active health checks (the timer's body) and the view of their results
- stats.py          attempts, retries, fallbacks and budget refusals per route and backend
The pipeline's parts:
- stage.py          the routing stage: path and method matched against the route table
- upstream.py       the upstream step: the loop over the plan's targets and members
- router.py         its shared parts (`Router`); exchange.py, one request's state
- member_attempt.py one attempt on a member; attempts.py, one exchange, classified
- target_request.py the request an attempt sends (URL, credentials, body; the Outbound port)
- answer.py         the answer given; answer_body.py, reading or streaming its body
"""
