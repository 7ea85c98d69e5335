"""Native FOCUS exports (AWS "FOCUS 1.2 with AWS columns", Azure FocusCost, GCP's FOCUS view,
OCI), FOCUS 1.0 to 1.3, as CSV (optionally gzipped) or Parquet.

Columns keep their FOCUS meaning under snake_case names; a 1.3 column missing from an older
export is null; provider `x_` columns are kept together as one JSON object.
"""

from __future__ import annotations

import re
from pathlib import Path

from ingest.files import Parsed
from ingest.tabular import Column, Format, Kind, read_table

FOCUS = "focus_charges"
FILE_SUFFIXES = (".csv", ".csv.gz", ".parquet")

# (FOCUS column, kind, required): FOCUS 1.2's Cost and Usage columns plus 1.3's additions.
_COLUMNS: tuple[tuple[str, Kind, bool], ...] = (
    ("AvailabilityZone", "str", False), ("BilledCost", "decimal", True), ("BillingAccountId", "str", True),
    ("BillingAccountName", "str", False), ("BillingAccountType", "str", False), ("BillingCurrency", "str", True),
    ("BillingPeriodEnd", "timestamp", False), ("BillingPeriodStart", "timestamp", True),
    ("CapacityReservationId", "str", False), ("CapacityReservationStatus", "str", False),
    ("ChargeCategory", "str", True), ("ChargeClass", "str", False), ("ChargeDescription", "str", False),
    ("ChargeFrequency", "str", False), ("ChargePeriodEnd", "timestamp", True),
    ("ChargePeriodStart", "timestamp", True), ("CommitmentDiscountCategory", "str", False),
    ("CommitmentDiscountId", "str", False), ("CommitmentDiscountName", "str", False),
    ("CommitmentDiscountQuantity", "decimal", False), ("CommitmentDiscountStatus", "str", False),
    ("CommitmentDiscountType", "str", False), ("CommitmentDiscountUnit", "str", False),
    ("ConsumedQuantity", "decimal", False), ("ConsumedUnit", "str", False), ("ContractedCost", "decimal", False),
    ("ContractedUnitPrice", "decimal", False), ("EffectiveCost", "decimal", True), ("InvoiceId", "str", False),
    ("InvoiceIssuerName", "str", False), ("ListCost", "decimal", False), ("ListUnitPrice", "decimal", False),
    ("PricingCategory", "str", False), ("PricingCurrency", "str", False),
    ("PricingCurrencyContractedUnitPrice", "decimal", False), ("PricingCurrencyEffectiveCost", "decimal", False),
    ("PricingCurrencyListUnitPrice", "decimal", False), ("PricingQuantity", "decimal", False),
    ("PricingUnit", "str", False), ("ProviderName", "str", False), ("PublisherName", "str", False),
    ("RegionId", "str", False), ("RegionName", "str", False), ("ResourceId", "str", False),
    ("ResourceName", "str", False), ("ResourceType", "str", False), ("ServiceCategory", "str", False),
    ("ServiceName", "str", False), ("ServiceSubcategory", "str", False), ("SkuId", "str", False),
    ("SkuMeter", "str", False), ("SkuPriceDetails", "json", False), ("SkuPriceId", "str", False),
    ("SubAccountId", "str", False), ("SubAccountName", "str", False), ("SubAccountType", "str", False),
    ("Tags", "json", False),
    # FOCUS 1.3
    ("ServiceProviderName", "str", False), ("HostProviderName", "str", False), ("AllocatedMethodId", "str", False),
    ("AllocatedMethodDetails", "json", False), ("AllocatedResourceId", "str", False),
    ("AllocatedResourceName", "str", False), ("AllocatedTags", "json", False), ("ContractApplied", "json", False),
)


def snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


FOCUS_FORMAT = Format(
    table=FOCUS,
    columns=(
        *(Column(snake(name), kind, (name,), required) for name, kind, required in _COLUMNS),
        Column("x_provider_columns", "json"),
    ),
    families={"x_": "x_provider_columns"},
    family_key=lambda column, key: "x_" + key,  # keep the provider's column names as they are
)


def read_focus_file(path: Path, label: str | None = None) -> Parsed:
    parsed = Parsed(label or str(path))
    table = read_table(path, FOCUS_FORMAT, parsed)
    if table is not None:
        parsed.tables[FOCUS] = table
    return parsed
