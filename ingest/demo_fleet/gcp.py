"""The demo fleet's Google Cloud bill: the detailed usage cost export, extracted from BigQuery
to newline JSON, one file a day re-reading the day before (as a trailing-window extract does).

An a2 VM bills its GPUs, cores and RAM as three SKUs on the same resource, each with a
committed-use discount credit; the GPU SKU also carries a promotional credit.
"""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from ingest.demo_fleet.bill import BillLine
from ingest.demo_fleet.plan import GCP_BILLING_ACCOUNT, GCP_PROJECT, Instance, Plan

PACIFIC = ZoneInfo("America/Los_Angeles")
COMPUTE = {"id": "6F81-5844-456A", "description": "Compute Engine"}
# (sku id, description, unit price, units per VM-hour: GPUs, vCPUs, GiB of RAM) for a2-highgpu-2g
VM_SKUS = (
    ("039F-D0DA-4055", "Nvidia Tesla A100 GPU running in Americas", 2.933908, 2, "hour"),
    ("3D0A-7E3A-AA2F", "A2 Instance Core running in Americas", 0.031611, 24, "hour"),
    ("9E1C-B6A6-7C2E", "A2 Instance Ram running in Americas", 0.004237, 170, "gibibyte hour"),
)
COMMITTED_USE_DISCOUNT = 0.37
PROMOTION_PER_HOUR = 0.25  # on the GPU SKU
DAILY = (  # (service, sku id, description, cost a day, team label)
    ({"id": "95FF-2EF5-5EA1", "description": "Cloud Storage"}, "E5F0-6A5D-7BAD", "Standard Storage US Multi-region",
     1.7749, "research"),
    ({"id": "E505-1604-58F8", "description": "Networking"}, "DE9E-AFBC-A15A",
     "Network Internet Data Transfer Out from Americas to Americas", 3.1, None),
)


def _bq_time(t: datetime) -> str:
    return f"{t:%Y-%m-%d %H:%M:%S} UTC"


def invoice_month(t: datetime) -> str:
    """Google's invoice months run on US Pacific time."""
    return f"{t.astimezone(PACIFIC):%Y%m}"


def _row(start: datetime, end: datetime, service: dict, sku: tuple[str, str], cost: float, usage: dict,
         credits: list[dict], labels: dict, resource: Instance | None, machine_spec: str | None) -> dict:
    month = invoice_month(start)
    return {
        "billing_account_id": GCP_BILLING_ACCOUNT,
        "service": service,
        "sku": {"id": sku[0], "description": sku[1]},
        "usage_start_time": _bq_time(start),
        "usage_end_time": _bq_time(end),
        "project": {"id": GCP_PROJECT, "number": "481234567890", "name": "ml-prod",
                    "labels": [{"key": "env", "value": "prod"}]},
        "labels": [{"key": k, "value": v} for k, v in labels.items()],
        "system_labels": [{"key": "compute.googleapis.com/machine_spec", "value": machine_spec}] if machine_spec
        else [],
        "location": {"location": "us-central1", "country": "US", "region": "us-central1", "zone": "us-central1-a"},
        "resource": {"name": resource.host, "global_name": resource.resource_id} if resource else None,
        "export_time": _bq_time(end + timedelta(hours=4)),
        "cost": cost,
        "currency": "USD",
        "currency_conversion_rate": 1.0,
        "usage": usage,
        "credits": credits,
        "invoice": {"month": month, "publisher_type": "GOOGLE"},
        "cost_type": "regular",
        "adjustment_info": None,
        "cost_at_list": cost,
        "transaction_type": "GOOGLE",
        "seller_name": "Google LLC",
    }


def _vm_lines(plan: Plan, inst: Instance, hour: int) -> list[BillLine]:
    t0 = plan.hour_start(hour)
    t1 = t0 + timedelta(hours=1)
    labels = {"team": inst.team_tag} if inst.team_tag else {}
    lines = []
    for sku_id, description, price, units, unit in VM_SKUS:
        cost = round(price * units, 6)
        cud = round(-cost * COMMITTED_USE_DISCOUNT, 6)
        credits = [{"name": "Committed use discount: A2", "amount": cud, "full_name": "Committed use discount",
                    "id": "CUD-a2-us-central1", "type": "COMMITTED_USAGE_DISCOUNT"}]
        promotion = -PROMOTION_PER_HOUR if "GPU" in description else 0.0
        if promotion:
            credits.append({"name": "Free trial credit", "amount": promotion, "full_name": "Promotion: ML launch",
                            "id": "PROMO-ml-launch", "type": "PROMOTION"})
        usage = {"amount": float(units * 3600 if unit == "hour" else units), "unit": "seconds" if unit == "hour"
                 else "gibibyte", "amount_in_pricing_units": float(units), "pricing_unit": unit}
        row = _row(t0, t1, COMPUTE, (sku_id, description), cost, usage, credits, labels, inst, inst.itype.name)
        row["price"] = {"effective_price": price, "tier_start_amount": 0.0, "unit": unit, "pricing_unit_quantity": 1.0}
        period = f"{invoice_month(t0)[:4]}-{invoice_month(t0)[4:]}"
        lines.append(BillLine("Google Cloud", GCP_BILLING_ACCOUNT, period, t0, t1, "regular", cost + cud, cost + cud,
                              cost, inst.resource_id, inst.team_tag, inst, row))
        if promotion:  # a promotion is money given, not a price: its own Credit row, never GPU compute
            lines.append(BillLine("Google Cloud", GCP_BILLING_ACCOUNT, period, t0, t1, "credit", promotion, promotion,
                                  promotion, inst.resource_id, inst.team_tag, None, {}))
    return lines


def _daily_lines(plan: Plan, day: int) -> list[BillLine]:
    t0 = plan.start + timedelta(days=day)
    t1 = t0 + timedelta(days=1)
    lines = []
    for service, sku_id, description, cost, team in DAILY:
        usage = {"amount": 1.0, "unit": "count", "amount_in_pricing_units": 1.0, "pricing_unit": "count"}
        row = _row(t0, t1, service, (sku_id, description), cost, usage, [], {"team": team} if team else {}, None,
                   None)
        period = f"{invoice_month(t0)[:4]}-{invoice_month(t0)[4:]}"
        lines.append(BillLine("Google Cloud", GCP_BILLING_ACCOUNT, period, t0, t1, "regular", cost, cost, cost, None,
                              team, None, row))
    return lines


def bill_lines(plan: Plan) -> list[BillLine]:
    lines: list[BillLine] = []
    for hour in range(plan.hours):
        for inst in (i for i in plan.instances if i.itype.provider == "Google Cloud"):
            lines += _vm_lines(plan, inst, hour)
        if hour % 24 == 0 and any(i.itype.provider == "Google Cloud" for i in plan.instances):
            lines += _daily_lines(plan, hour // 24)
    return lines


def write_extracts(plan: Plan, lines: list[BillLine], root: Path) -> list[Path]:
    """One extract a day holding that day's and the previous day's rows: extracts overlap."""
    rows_by_day: dict[int, list[str]] = {}
    for ln in lines:
        if ln.row:
            day = (ln.start.astimezone(UTC) - plan.start).days
            rows_by_day.setdefault(day, []).append(json.dumps(ln.row, separators=(",", ":")))
    root.mkdir(parents=True, exist_ok=True)
    written = []
    for day in sorted(rows_by_day):
        date = (plan.start + timedelta(days=day)).date()
        path = root / f"gcp_billing_export_resource_v1_{GCP_BILLING_ACCOUNT.replace('-', '_')}-{date}.jsonl.gz"
        body = "".join(r + "\n" for d in (day - 1, day) for r in rows_by_day.get(d, []))
        with path.open("wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", filename="", mtime=0) as gz:
            gz.write(body.encode())
        written.append(path)
    return written
