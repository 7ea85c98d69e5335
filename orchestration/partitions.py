"""Time partitions: billing periods by month (key `2026-11-01` is period `2026-11`), telemetry and
serving by UTC day (key `2026-11-24`)."""

import dagster as dg

# Dagster's own tags for a run over a range of partitions (what the UI's backfill of a single-run
# asset sets); not exported at the top level.
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

# From far enough back for any retained CUR history; one month ahead so the open month exists.
billing_periods = dg.MonthlyPartitionsDefinition(start_date="2015-01-01", end_offset=1)
# Today's partition exists from midnight on: the hourly schedule and the file sensor fill it as files land.
days = dg.DailyPartitionsDefinition(start_date="2020-01-01", end_offset=1)


def partition_key(period: str) -> str:
    return f"{period}-01"


def period_of(partition_key: str) -> str:
    return partition_key[:7]


def day_range_tags(first: str, last: str) -> dict[str, str]:
    """The tags of one run over the daily partitions first..last (inclusive)."""
    return {ASSET_PARTITION_RANGE_START_TAG: first, ASSET_PARTITION_RANGE_END_TAG: last}
