"""Oracle Cloud cost reports (`reports/cost-csv/*.csv.gz`, the `lineItem/*`, `cost/*`, `tags/*`
CSV OCI writes to its usage-report bucket). Defined tags fold into one JSON `tags` column."""

from __future__ import annotations

from pathlib import Path

from ingest.files import Parsed
from ingest.tabular import Column, Format, read_table

OCI = "oci_cost_report"
FILE_SUFFIXES = (".csv", ".csv.gz")

OCI_FORMAT = Format(
    table=OCI,
    columns=(
        Column("reference_no", "str", ("lineItem/referenceNo",)),
        Column("tenant_id", "str", ("lineItem/tenantId",), required=True),
        Column("interval_usage_start", "timestamp", ("lineItem/intervalUsageStart",), required=True),
        Column("interval_usage_end", "timestamp", ("lineItem/intervalUsageEnd",), required=True),
        Column("service", "str", ("product/service",)),
        Column("compartment_id", "str", ("product/compartmentId",)),
        Column("compartment_name", "str", ("product/compartmentName",)),
        Column("region", "str", ("product/region",)),
        Column("availability_domain", "str", ("product/availabilityDomain",)),
        Column("resource_id", "str", ("product/resourceId",)),
        Column("billed_quantity", "decimal", ("usage/billedQuantity",)),
        Column("billed_quantity_overage", "decimal", ("usage/billedQuantityOverage",)),
        Column("subscription_id", "str", ("cost/subscriptionId",)),
        Column("product_sku", "str", ("cost/productSku",)),
        Column("product_description", "str", ("product/Description",)),
        Column("unit_price", "decimal", ("cost/unitPrice",)),
        Column("unit_price_overage", "decimal", ("cost/unitPriceOverage",)),
        Column("my_cost", "decimal", ("cost/myCost",), required=True),
        Column("my_cost_overage", "decimal", ("cost/myCostOverage",)),
        Column("currency_code", "str", ("cost/currencyCode",), required=True),
        Column("billing_unit_readable", "str", ("cost/billingUnitReadable",)),
        Column("sku_unit_description", "str", ("cost/skuUnitDescription",)),
        Column("overage_flag", "str", ("cost/overageFlag",)),
        Column("is_correction", "str", ("lineItem/isCorrection",)),
        Column("backreference_no", "str", ("lineItem/backreferenceNo",)),
        Column("tags", "json"),
    ),
    families={"tags/": "tags"},
)


def read_oci_file(path: Path, label: str | None = None) -> Parsed:
    parsed = Parsed(label or str(path))
    table = read_table(path, OCI_FORMAT, parsed)
    if table is not None:
        parsed.tables[OCI] = table
    return parsed
