"""Billing periods as Dagster monthly partitions: partition key `2026-11-01` is period `2026-11`."""

import dagster as dg

# From far enough back for any retained CUR history; one month ahead so the open month exists.
billing_periods = dg.MonthlyPartitionsDefinition(start_date="2015-01-01", end_offset=1)


def partition_key(period: str) -> str:
    return f"{period}-01"


def period_of(partition_key: str) -> str:
    return partition_key[:7]
