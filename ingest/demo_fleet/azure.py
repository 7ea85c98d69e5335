"""The demo fleet's Azure bill: a FOCUS 1.2 export (Cost Management's FocusCost dataset), one
month-to-date CSV per billing period, daily charges, with Azure's own x_ columns."""

from __future__ import annotations

import csv
import json
from datetime import datetime, timedelta
from pathlib import Path

from ingest.demo_fleet.bill import BillLine
from ingest.demo_fleet.plan import AZURE_BILLING_ACCOUNT, AZURE_SUBSCRIPTION, Instance, Plan

COLUMNS = (
    "BilledCost", "BillingAccountId", "BillingAccountName", "BillingCurrency", "BillingPeriodEnd",
    "BillingPeriodStart", "ChargeCategory", "ChargeClass", "ChargeDescription", "ChargeFrequency",
    "ChargePeriodEnd", "ChargePeriodStart", "ConsumedQuantity", "ConsumedUnit", "ContractedCost",
    "ContractedUnitPrice", "EffectiveCost", "InvoiceIssuerName", "ListCost", "ListUnitPrice", "PricingCategory",
    "PricingQuantity", "PricingUnit", "ProviderName", "PublisherName", "RegionId", "RegionName", "ResourceId",
    "ResourceName", "ResourceType", "ServiceCategory", "ServiceName", "ServiceSubcategory", "SkuId",
    "SkuPriceDetails", "SkuPriceId", "SubAccountId", "SubAccountName", "Tags", "x_SkuMeterCategory",
    "x_SkuMeterSubcategory", "x_ResourceGroupName",
)
STORAGE_PER_DAY = 1.2
CREDIT_PER_DAY = -10.0


def _month(t: datetime) -> tuple[datetime, datetime]:
    first = t.replace(day=1, hour=0)
    return first, (first + timedelta(days=32)).replace(day=1)


def _iso(t: datetime) -> str:
    return f"{t:%Y-%m-%dT%H:%M:%SZ}"


def _row(t0: datetime, category: str, cost: float, description: str, service: tuple[str, str, str],
         **extra: object) -> dict:
    start, end = _month(t0)
    return {
        "BilledCost": f"{cost:.6f}", "EffectiveCost": f"{cost:.6f}", "ListCost": f"{cost:.6f}",
        "ContractedCost": f"{cost:.6f}", "BillingAccountId": AZURE_BILLING_ACCOUNT,
        "BillingAccountName": "gpuledger demo", "BillingCurrency": "USD", "BillingPeriodStart": _iso(start),
        "BillingPeriodEnd": _iso(end), "ChargeCategory": category, "ChargeDescription": description,
        "ChargeFrequency": "Usage-Based" if category == "Usage" else "One-Time",
        "ChargePeriodStart": _iso(t0), "ChargePeriodEnd": _iso(t0 + timedelta(days=1)),
        "InvoiceIssuerName": "Microsoft", "ProviderName": "Microsoft", "PublisherName": "Microsoft",
        "ServiceName": service[0], "ServiceCategory": service[1], "ServiceSubcategory": service[2],
        "SubAccountId": f"/subscriptions/{AZURE_SUBSCRIPTION}", "SubAccountName": "ml-prod", "RegionId": "eastus",
        "RegionName": "East US", **extra,
    }


def _vm_line(plan: Plan, inst: Instance, t0: datetime) -> BillLine:
    it = inst.itype
    cost = round(it.on_demand_rate * 24, 6)
    row = _row(t0, "Usage", cost, f"{it.name} Virtual Machine", ("Virtual Machines", "Compute", "Virtual Machines"),
               ConsumedQuantity="24", ConsumedUnit="Hours", PricingQuantity="24", PricingUnit="Hours",
               ListUnitPrice=f"{it.on_demand_rate}", ContractedUnitPrice=f"{it.on_demand_rate}",
               PricingCategory="Standard", ResourceId=inst.resource_id, ResourceName=inst.host,
               ResourceType="Virtual machine", SkuId="7e7a7b6a-b0a9-4e0a-9a5e-4f1c0e6f2e11",
               SkuPriceId="DZH318Z0BQ4J:0001", SkuPriceDetails=json.dumps({"InstanceType": it.name}),
               Tags=json.dumps({"team": inst.team_tag}) if inst.team_tag else "",
               x_SkuMeterCategory="Virtual Machines", x_SkuMeterSubcategory="NCads A100 v4 Series",
               x_ResourceGroupName="ml-prod")
    return BillLine("Microsoft", AZURE_BILLING_ACCOUNT, f"{t0:%Y-%m}", t0, t0 + timedelta(days=1), "Usage", cost,
                    cost, cost, inst.resource_id, inst.team_tag, inst, row)


def _daily_lines(t0: datetime, team: str | None) -> list[BillLine]:
    account = f"/subscriptions/{AZURE_SUBSCRIPTION}/resourceGroups/ml-prod/providers/Microsoft.Storage/" \
              "storageAccounts/mlprodcheckpoints"
    storage = _row(t0, "Usage", STORAGE_PER_DAY, "Hot LRS Data Stored", ("Storage Accounts", "Storage",
                   "Object Storage"), PricingCategory="Standard", ResourceId=account, ResourceName="mlprodcheckpoints",
                   Tags=json.dumps({"team": team}) if team else "")
    credit = _row(t0, "Credit", CREDIT_PER_DAY, "Azure sponsorship credit", ("Azure Credits", "Other",
                  "Other (Other)"))
    end = t0 + timedelta(days=1)
    return [
        BillLine("Microsoft", AZURE_BILLING_ACCOUNT, f"{t0:%Y-%m}", t0, end, "Usage", STORAGE_PER_DAY,
                 STORAGE_PER_DAY, STORAGE_PER_DAY, account, team, None, storage),
        BillLine("Microsoft", AZURE_BILLING_ACCOUNT, f"{t0:%Y-%m}", t0, end, "Credit", CREDIT_PER_DAY,
                 CREDIT_PER_DAY, CREDIT_PER_DAY, None, None, None, credit),
    ]


def bill_lines(plan: Plan) -> list[BillLine]:
    vms = [i for i in plan.instances if i.itype.provider == "Microsoft"]
    lines: list[BillLine] = []
    for day in range(plan.days if vms else 0):
        t0 = plan.start + timedelta(days=day)
        lines += [_vm_line(plan, inst, t0) for inst in vms]
        lines += _daily_lines(t0, vms[0].team_tag)
    return lines


def write_exports(lines: list[BillLine], root: Path) -> list[Path]:
    """One month-to-date FocusCost CSV per billing period (each export run rewrites its month)."""
    root.mkdir(parents=True, exist_ok=True)
    written = []
    for period in sorted({ln.period for ln in lines}):
        path = root / f"FocusCost_{period}.csv"
        with path.open("w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=COLUMNS, lineterminator="\n")
            writer.writeheader()
            writer.writerows(ln.row for ln in lines if ln.period == period)
        written.append(path)
    return written
