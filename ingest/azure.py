"""Azure Cost Management cost details exports (EA and MCA, actual or amortized), the pre-FOCUS
CSV most Azure customers still have. Header names differ between EA and MCA in letter case and
a few names; both are accepted. (Azure's FOCUS export is read by `ingest.focus`.)"""

from __future__ import annotations

from pathlib import Path

from ingest.files import Parsed
from ingest.tabular import Column, Format, read_table

AZURE = "azure_cost_details"
FILE_SUFFIXES = (".csv", ".csv.gz", ".parquet")

AZURE_FORMAT = Format(
    table=AZURE,
    columns=(
        Column("billing_account_id", "str", ("BillingAccountId",), required=True),
        Column("billing_account_name", "str", ("BillingAccountName",)),
        Column("billing_profile_id", "str", ("BillingProfileId",)),
        Column("subscription_id", "str", ("SubscriptionId",)),
        Column("subscription_name", "str", ("SubscriptionName",)),
        Column("resource_group", "str", ("ResourceGroup", "ResourceGroupName")),
        Column("resource_location", "str", ("ResourceLocation",)),
        Column("usage_date", "timestamp", ("Date", "UsageDateTime"), required=True),
        Column("product_name", "str", ("ProductName", "Product")),
        Column("meter_category", "str", ("MeterCategory",)),
        Column("meter_sub_category", "str", ("MeterSubCategory",)),
        Column("meter_id", "str", ("MeterId",)),
        Column("meter_name", "str", ("MeterName",)),
        Column("meter_region", "str", ("MeterRegion",)),
        Column("unit_of_measure", "str", ("UnitOfMeasure",)),
        Column("quantity", "decimal", ("Quantity",)),
        Column("effective_price", "decimal", ("EffectivePrice",)),
        Column("cost", "decimal", ("CostInBillingCurrency", "Cost"), required=True),
        Column("billing_currency", "str", ("BillingCurrencyCode", "BillingCurrency"), required=True),
        Column("consumed_service", "str", ("ConsumedService",)),
        Column("resource_id", "str", ("ResourceId", "InstanceId")),
        Column("resource_name", "str", ("ResourceName",)),
        Column("tags", "json", ("Tags",)),
        Column("additional_info", "json", ("AdditionalInfo",)),
        Column("unit_price", "decimal", ("UnitPrice",)),
        Column("pay_g_price", "decimal", ("PayGPrice",)),
        Column("charge_type", "str", ("ChargeType",)),
        Column("frequency", "str", ("Frequency",)),
        Column("pricing_model", "str", ("PricingModel",)),
        Column("reservation_id", "str", ("ReservationId",)),
        Column("benefit_id", "str", ("benefitId", "BenefitId")),
        Column("benefit_name", "str", ("benefitName", "BenefitName")),
        Column("billing_period_start", "timestamp", ("BillingPeriodStartDate",)),
        Column("billing_period_end", "timestamp", ("BillingPeriodEndDate",)),
        Column("publisher_type", "str", ("PublisherType",)),
        Column("publisher_name", "str", ("PublisherName",)),
        Column("availability_zone", "str", ("AvailabilityZone",)),
        Column("part_number", "str", ("PartNumber",)),
        Column("service_family", "str", ("ServiceFamily",)),
        Column("invoice_id", "str", ("InvoiceId",)),
    ),
)


def read_azure_file(path: Path, label: str | None = None) -> Parsed:
    parsed = Parsed(label or str(path))
    table = read_table(path, AZURE_FORMAT, parsed)
    if table is not None:
        parsed.tables[AZURE] = table
    return parsed
