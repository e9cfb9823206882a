"""Lease mode (RATE_LIMIT_SYNC=lease): instances lease blocks of tokens from shared rows.

lease (the pure lease maths), keys (where the rows live), demand (observed rate per key),
keystate (one key's pool at this instance), leaser (one lease: read, take, conditional write),
verdict (a scope's verdict from its pool or lease outcome), sweeper (returns abandoned leases),
maintenance (the background upkeep), limiter (the Limiter).
"""
