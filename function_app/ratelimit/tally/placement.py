"""Where one instance's tally row and its copy of the summary live: instances are spread over
group partitions of about GROUP_SIZE each, and the number of groups follows the fleet the
summary counted (not only RATE_LIMIT_EXPECTED_INSTANCES)."""

from __future__ import annotations

import math

from function_app.ratelimit.store import RowKey
from function_app.ratelimit.tally.aggregator import SUMMARY, copy_key, group_key

GROUP_SIZE = 100  # instances per group partition: ~100 writes + 100 rows read per period


def group_count(expected_instances: int) -> int:
    return max(1, min(64, math.ceil(expected_instances / GROUP_SIZE)))


class Placement:
    """This instance's row and the summary copy it reads, for the current number of groups."""

    def __init__(self, me: str, groups: int) -> None:
        self.me, self.groups, self._least = me, groups, groups
        self.row, self.copy = self._where(groups)

    def _where(self, groups: int) -> tuple[RowKey, RowKey]:
        group = int(self.me, 16) % groups
        return RowKey(group_key(group), self.me), copy_key(group) if groups > 1 else SUMMARY

    def follow(self, instances: int) -> bool:
        """A group per GROUP_SIZE of the `instances` a summary counted (fewer only when the
        fleet is a third smaller: no flapping); True when the row moved. The old row stops
        counting within two periods (tally.aggregate) and the aggregator deletes it when it is
        GONE_PERIODS old."""
        grow = group_count(instances)
        shrink = group_count(int(instances * 1.5))
        wanted = max(self._least, grow if grow > self.groups else min(self.groups, shrink))
        if wanted == self.groups:
            return False
        self.groups = wanted
        self.row, self.copy = self._where(wanted)
        return True
