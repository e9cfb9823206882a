"""Resilient routing: pools, picking a member, retries within a budget, fallbacks, breakers.

Pure policies (no I/O; time and randomness are passed in):
- pools.py      members, targets and plans (the route table's and the model table's pools)
- policy.py     `pick_backend` (priority, weight, power of two choices), `decide`, `next_delay`
- budget.py     the sliding-window retry budget
- breaker.py    the breaker state machine of one backend
Around them, still free of any I/O library:
- store.py      the BreakerStore and ProbeStore ports (memory and Table Storage adapters)
- breakers.py   breakers shared across instances through the store, read through a short cache
- probes.py     active health checks (the timer's body) and the view of their results
- stats.py      attempts, retries, fallbacks and budget refusals per route and backend
The attempt loop that uses them is the upstream step, function_app/stages/upstream.py.
"""
