"""Response caching: pure policy (RFC 9111 rules, keys, entries), the tier port, the memory LRU,
the tier stack with its shared-tier guard, request coalescing, and the completion cache rules.

Nothing here does network I/O; the redis and blob tiers live in function_app/adapters/.
"""
