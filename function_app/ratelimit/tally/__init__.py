"""Tally mode (RATE_LIMIT_SYNC=tally): each instance decides locally on its share of a limit.

tally (the pure maths: shares, the summary, the bound), rows (the rows as stored), sync (this
instance's publish/read cycle), aggregator (the one instance that sums the rows), trouble
(chores that must not fail silently), limiter (the TallyLimiter; budgets go to lease mode).
"""
