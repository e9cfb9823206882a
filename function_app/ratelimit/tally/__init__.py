"""Tally mode (RATE_LIMIT_SYNC=tally): each instance decides locally on its share of a limit.

tally (the pure maths: shares, the summary), rows (the rows as stored), ledger (what this
instance counted and published), placement (where its row lives), publisher (writes its row),
summary (reads the summary, takes it over), aggregator (the one instance that sums the rows),
sync (when each of those runs), trouble (chores that must not fail silently), limiter (the
TallyLimiter), budgets, pots and potgrants (rate-0 limits: pots the aggregator leases for the
fleet from each budget's lease row, the exact lease path otherwise). Design and bound:
docs/ratelimit-tally.md.
"""
