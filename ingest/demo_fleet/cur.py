"""The demo fleet's AWS bill: CUR 2.0 line items, one delivery per billing period.

Each line carries what AWS would write (the CUR columns) and, beside them, the costs AWS's own
amortisation rules give it, so the ground truth never has to re-derive them.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ingest.aws_cur_schema import CUR2_SCHEMA
from ingest.demo_fleet.bill import BillLine
from ingest.demo_fleet.inject import egress_spike
from ingest.demo_fleet.plan import (
    EXPORT_NAME,
    PAYER_ACCOUNT,
    REGION,
    SAVINGS_PLAN_DISCOUNT,
    SPOT_DISCOUNT,
    USAGE_ACCOUNT,
    Instance,
    Plan,
    hex_id,
    rng_for,
)

EBS_GB = 2000
EBS_RATE = 0.08  # USD per GB-month, gp3
HOURS_PER_MONTH = 730
S3_BUCKETS = (("gpuledger-demo-models", None, 4096), ("research-datasets", "research", 1536))
S3_RATE = 0.023
TRANSFER_RATE = 0.09
DAILY_CREDIT = -20.0
TAX_RATE = 0.06
DEMO_BUCKET = "gpuledger-demo-billing"


def _month_bounds(t: datetime) -> tuple[datetime, datetime]:
    first = t.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    nxt = (first + timedelta(days=32)).replace(day=1)
    return first, nxt


def _line(
    start: datetime, end: datetime, line_type: str, unblended: float, *, product_code: str, usage_type: str,
    operation: str, description: str, effective: float | None = None, public_on_demand: float | None = None,
    resource_id: str | None = None, team_tag: str | None = None, instance: Instance | None = None,
    usage_amount: float | None = None, pricing_unit: str | None = None, **extra: object,
) -> BillLine:
    unblended = round(unblended, 10)
    effective = unblended if effective is None else round(effective, 10)
    cur = {
        "bill_bill_type": "Anniversary",
        "bill_billing_entity": "AWS",
        "bill_invoicing_entity": "Amazon Web Services, Inc.",
        "bill_payer_account_id": PAYER_ACCOUNT[0],
        "bill_payer_account_name": PAYER_ACCOUNT[1],
        "identity_time_interval": f"{start:%Y-%m-%dT%H:%M:%SZ}/{end:%Y-%m-%dT%H:%M:%SZ}",
        "line_item_currency_code": "USD",
        "line_item_legal_entity": "Amazon Web Services, Inc.",
        "line_item_line_item_description": description,
        "line_item_line_item_type": line_type,
        "line_item_operation": operation,
        "line_item_product_code": product_code,
        "line_item_resource_id": resource_id or "",
        "line_item_unblended_cost": unblended,
        "line_item_blended_cost": unblended,
        "line_item_usage_account_id": USAGE_ACCOUNT[0],
        "line_item_usage_account_name": USAGE_ACCOUNT[1],
        "line_item_usage_amount": usage_amount,
        "line_item_usage_end_date": end.replace(tzinfo=None),
        "line_item_usage_start_date": start.replace(tzinfo=None),
        "line_item_usage_type": usage_type,
        "pricing_currency": "USD",
        "pricing_public_on_demand_cost": public_on_demand,
        "pricing_unit": pricing_unit,
        "product_region_code": REGION,
        "product_servicecode": product_code,
        "resource_tags": [("user_team", team_tag)] if team_tag else [],
        **extra,
    }
    list_cost = unblended if public_on_demand is None else public_on_demand
    return BillLine("AWS", PAYER_ACCOUNT[0], f"{start:%Y-%m}", start, end, line_type, unblended, effective,
                    list_cost, resource_id, team_tag, instance, cur)


def _instance_lines(plan: Plan, inst: Instance, hour: int, spot_rng: np.random.Generator) -> list[BillLine]:
    t0 = plan.hour_start(hour)
    t1 = t0 + timedelta(hours=1)
    it = inst.itype
    od = it.on_demand_rate
    product = {
        "instance_type": it.name, "gpu": str(it.gpu_count), "vcpu": str(it.vcpu),
        "memory": f"{it.memory_gib} GiB", "operating_system": "Linux", "tenancy": "Shared",
    }
    common = dict(
        product_code="AmazonEC2", operation="RunInstances", resource_id=inst.resource_id,
        team_tag=inst.team_tag, instance=inst, usage_amount=1.0, pricing_unit="Hrs",
        product_instance_type=it.name, product_instance_family="GPU instance",
        product_product_family="Compute Instance",
        product=list(product.items()), line_item_availability_zone=f"{REGION}a",
    )
    if inst.pricing == "spot":
        price = round(od * (1 - spot_rng.uniform(*SPOT_DISCOUNT)), 4)
        return [_line(t0, t1, "Usage", price, usage_type=f"USE1-SpotUsage:{it.name}",
                      description=f"${price} per Linux/UNIX Spot Instance-hour for {it.name}",
                      public_on_demand=od, pricing_term="Spot", pricing_purchase_option="Spot",
                      line_item_unblended_rate=price, **common)]
    if inst.pricing == "savings_plan":
        sp_cost = od * (1 - SAVINGS_PLAN_DISCOUNT)
        sp = dict(savings_plan_savings_plan_a_r_n=plan.savings_plan_arn,
                  savings_plan_offering_type="ComputeSavingsPlans")
        return [
            _line(t0, t1, "SavingsPlanCoveredUsage", od, effective=sp_cost, usage_type=f"USE1-BoxUsage:{it.name}",
                  description=f"{it.name} covered by Savings Plan", public_on_demand=od, pricing_term="OnDemand",
                  savings_plan_savings_plan_effective_cost=round(sp_cost, 10),
                  savings_plan_savings_plan_rate=round(sp_cost, 10), line_item_unblended_rate=od, **sp, **common),
            _line(t0, t1, "SavingsPlanNegation", -od, effective=0.0, usage_type=f"USE1-BoxUsage:{it.name}",
                  description=f"SavingsPlanNegation used by AccountId : {USAGE_ACCOUNT[0]} and UsageSku",
                  public_on_demand=0.0, pricing_term="OnDemand", **sp, **common),
        ]
    return [_line(t0, t1, "Usage", od, usage_type=f"USE1-BoxUsage:{it.name}",
                  description=f"${od} per On Demand Linux {it.name} Instance Hour", public_on_demand=od,
                  pricing_term="OnDemand", pricing_purchase_option="On Demand", line_item_unblended_rate=od, **common)]


def _support_lines(plan: Plan, inst: Instance, hour: int, rng: np.random.Generator,
                   extra_gb: float = 0.0) -> list[BillLine]:
    """Storage and egress of one instance-hour: tagged like the instance, never GPU compute.
    `extra_gb`: egress on top of the usual draw (the injected spike), in the same line as AWS would bill it."""
    t0 = plan.hour_start(hour)
    t1 = t0 + timedelta(hours=1)
    gb = float(np.round(rng.lognormal(1.0, 0.8), 6)) + extra_gb
    return [
        _line(t0, t1, "Usage", EBS_RATE * EBS_GB / HOURS_PER_MONTH, product_code="AmazonEC2",
              usage_type="USE1-EBS:VolumeUsage.gp3", operation="CreateVolume-Gp3",
              description="$0.08 per GB-month of General Purpose (gp3) provisioned storage",
              public_on_demand=round(EBS_RATE * EBS_GB / HOURS_PER_MONTH, 10), resource_id=inst.volume_id,
              team_tag=inst.team_tag, usage_amount=round(EBS_GB / HOURS_PER_MONTH, 10), pricing_unit="GB-Mo",
              product_product_family="Storage"),
        _line(t0, t1, "Usage", TRANSFER_RATE * gb, product_code="AWSDataTransfer",
              usage_type="USE1-DataTransfer-Out-Bytes", operation="RunInstances",
              description="$0.09 per GB - first 10 TB / month data transfer out beyond the global free tier",
              public_on_demand=round(TRANSFER_RATE * gb, 10), resource_id=inst.resource_id, team_tag=inst.team_tag,
              usage_amount=gb, pricing_unit="GB", product_product_family="Data Transfer"),
    ]


def _daily_lines(plan: Plan, day: int) -> list[BillLine]:
    t0 = plan.start + timedelta(days=day)
    t1 = t0 + timedelta(days=1)
    lines = [
        _line(t0, t1, "Usage", gb * S3_RATE / 30, product_code="AmazonS3", usage_type="USE1-TimedStorage-ByteHrs",
              operation="StandardStorage", description="$0.023 per GB - first 50 TB / month of storage used",
              public_on_demand=round(gb * S3_RATE / 30, 10), resource_id=bucket, team_tag=team,
              usage_amount=round(gb / 30, 10), pricing_unit="GB-Mo", product_product_family="Storage")
        for bucket, team, gb in S3_BUCKETS
    ]
    lines.append(_line(t0, t1, "Credit", DAILY_CREDIT, product_code="AmazonEC2", usage_type="", operation="",
                       description="AWS Activate credits"))
    return lines


def _savings_plan_fee(plan: Plan, hour: int, used: float) -> BillLine:
    t0 = plan.hour_start(hour)
    c = plan.savings_plan_commitment
    return _line(t0, t0 + timedelta(hours=1), "SavingsPlanRecurringFee", c, effective=c - used,
                 product_code="ComputeSavingsPlans", usage_type="ComputeSP:1yrNoUpfront", operation="",
                 description="1 year No Upfront Compute Savings Plan", public_on_demand=0.0,
                 resource_id=plan.savings_plan_arn, savings_plan_savings_plan_a_r_n=plan.savings_plan_arn,
                 savings_plan_total_commitment_to_date=c, savings_plan_used_commitment=round(used, 10),
                 savings_plan_recurring_commitment_for_billing_period=c)


def bill_lines(plan: Plan) -> list[BillLine]:
    """Every AWS line item of the window, tax included, in delivery order."""
    spot_rng = rng_for(plan.seed, "spot-prices")
    traffic_rng = rng_for(plan.seed, "egress")
    spike = egress_spike(plan)
    lines: list[BillLine] = []
    for hour in range(plan.hours):
        used = 0.0
        for inst in (i for i in plan.instances if i.itype.provider == "AWS"):
            inst_lines = _instance_lines(plan, inst, hour, spot_rng)
            used += sum(ln.effective for ln in inst_lines if ln.kind == "SavingsPlanCoveredUsage")
            extra = spike.gb if spike and spike.hour == hour and spike.instance is inst else 0.0
            lines += inst_lines + _support_lines(plan, inst, hour, traffic_rng, extra)
        if plan.savings_plan_commitment:
            lines.append(_savings_plan_fee(plan, hour, used))
        if hour % 24 == 0:
            lines += _daily_lines(plan, hour // 24)
    for period in sorted({ln.period for ln in lines}):
        start, end = _month_bounds(datetime.strptime(period, "%Y-%m").replace(tzinfo=plan.start.tzinfo))
        taxable = sum(ln.billed for ln in lines if ln.period == period and ln.kind != "Credit")
        lines.append(_line(start, end, "Tax", round(taxable * TAX_RATE, 2), product_code="AmazonEC2", usage_type="",
                           operation="", description="Tax for product code AmazonEC2", line_item_tax_type="Sales"))
    return lines


def write_deliveries(plan: Plan, lines: list[BillLine], root: Path) -> list[Path]:
    """One CUR 2.0 delivery (Parquet + manifest) per billing period, as AWS lays them out in S3."""
    ids = rng_for(plan.seed, "line-item-ids")
    written = []
    for period in sorted({ln.period for ln in lines}):
        start, end = _month_bounds(datetime.strptime(period, "%Y-%m"))
        rows = [ln.row for ln in lines if ln.period == period]
        for row in rows:
            row["identity_line_item_id"] = hex_id(ids, 52)
            row["bill_billing_period_start_date"] = start
            row["bill_billing_period_end_date"] = end
        columns = {name: [r.get(name) for r in rows] for name in CUR2_SCHEMA.names}
        table = pa.table(columns, schema=CUR2_SCHEMA)
        data_dir = root / EXPORT_NAME / "data" / f"BILLING_PERIOD={period}"
        meta_dir = root / EXPORT_NAME / "metadata" / f"BILLING_PERIOD={period}"
        data_dir.mkdir(parents=True, exist_ok=True)
        meta_dir.mkdir(parents=True, exist_ok=True)
        data_file = data_dir / f"{EXPORT_NAME}-00001.snappy.parquet"
        pq.write_table(table, data_file, compression="snappy")
        manifest = {
            "exportArn": f"arn:aws:bcm-data-exports:us-east-1:{PAYER_ACCOUNT[0]}:export/{EXPORT_NAME}",
            "exportName": EXPORT_NAME,
            "executionId": hex_id(ids, 32),
            "billingPeriod": {"start": f"{start:%Y-%m-%dT%H:%M:%S.000Z}", "end": f"{end:%Y-%m-%dT%H:%M:%S.000Z}"},
            "dataFiles": [f"s3://{DEMO_BUCKET}/billing/aws/{EXPORT_NAME}/data/BILLING_PERIOD={period}/{data_file.name}"],
            "columns": [{"name": f.name, "type": str(f.type)} for f in CUR2_SCHEMA],
        }
        manifest_file = meta_dir / f"{EXPORT_NAME}-Manifest.json"
        manifest_file.write_text(json.dumps(manifest, indent=2) + "\n")
        written += [data_file, manifest_file]
    return written
