"""The AWS CUR 2.0 (Data Exports `COST_AND_USAGE_REPORT`) schema as AWS writes it to Parquet.

Column names and types follow the CUR 2.0 table dictionary: strings, doubles for money and
quantities, timestamps in UTC, and maps for tags and product attributes.
"""

from __future__ import annotations

import pyarrow as pa

STRING = pa.string()
DOUBLE = pa.float64()
TIMESTAMP = pa.timestamp("ms")
STRING_MAP = pa.map_(pa.string(), pa.string())

_STRINGS = [
    "bill_bill_type", "bill_billing_entity", "bill_invoice_id", "bill_invoicing_entity", "bill_payer_account_id",
    "bill_payer_account_name", "identity_line_item_id", "identity_time_interval", "line_item_availability_zone",
    "line_item_currency_code", "line_item_legal_entity", "line_item_line_item_description",
    "line_item_line_item_type", "line_item_operation", "line_item_product_code", "line_item_resource_id",
    "line_item_tax_type", "line_item_usage_account_id", "line_item_usage_account_name", "line_item_usage_type",
    "line_item_user_identifier", "pricing_currency", "pricing_lease_contract_length", "pricing_offering_class",
    "pricing_purchase_option", "pricing_rate_code", "pricing_rate_id", "pricing_term", "pricing_unit",
    "product_comment", "product_fee_code", "product_fee_description", "product_from_location",
    "product_from_location_type", "product_from_region_code", "product_instance_family", "product_instance_type",
    "product_instancesku", "product_location", "product_location_type", "product_operation", "product_pricing_unit",
    "product_product_family", "product_region_code", "product_servicecode", "product_sku", "product_to_location",
    "product_to_location_type", "product_to_region_code", "product_usagetype", "reservation_availability_zone",
    "reservation_modification_status", "reservation_reservation_a_r_n", "reservation_subscription_id",
    "savings_plan_instance_type_family", "savings_plan_offering_type", "savings_plan_payment_option",
    "savings_plan_purchase_term", "savings_plan_region", "savings_plan_savings_plan_a_r_n",
]

_DOUBLES = [
    "discount_bundled_discount", "discount_total_discount", "line_item_blended_cost", "line_item_blended_rate",
    "line_item_net_unblended_cost", "line_item_net_unblended_rate", "line_item_normalization_factor",
    "line_item_normalized_usage_amount", "line_item_unblended_cost", "line_item_unblended_rate",
    "line_item_usage_amount", "pricing_public_on_demand_cost", "pricing_public_on_demand_rate",
    "reservation_amortized_upfront_cost_for_usage", "reservation_amortized_upfront_fee_for_billing_period",
    "reservation_effective_cost", "reservation_net_amortized_upfront_cost_for_usage",
    "reservation_net_amortized_upfront_fee_for_billing_period", "reservation_net_effective_cost",
    "reservation_net_recurring_fee_for_usage", "reservation_net_unused_amortized_upfront_fee_for_billing_period",
    "reservation_net_unused_recurring_fee", "reservation_net_upfront_value",
    "reservation_normalized_units_per_reservation", "reservation_number_of_reservations",
    "reservation_recurring_fee_for_usage", "reservation_total_reserved_normalized_units",
    "reservation_total_reserved_units", "reservation_unused_amortized_upfront_fee_for_billing_period",
    "reservation_unused_normalized_unit_quantity", "reservation_unused_quantity",
    "reservation_unused_recurring_fee", "reservation_upfront_value", "reservation_units_per_reservation",
    "savings_plan_amortized_upfront_commitment_for_billing_period",
    "savings_plan_net_amortized_upfront_commitment_for_billing_period",
    "savings_plan_net_recurring_commitment_for_billing_period", "savings_plan_net_savings_plan_effective_cost",
    "savings_plan_recurring_commitment_for_billing_period", "savings_plan_savings_plan_effective_cost",
    "savings_plan_savings_plan_rate", "savings_plan_total_commitment_to_date", "savings_plan_used_commitment",
]

_TIMESTAMPS = [
    "bill_billing_period_end_date", "bill_billing_period_start_date", "line_item_usage_end_date",
    "line_item_usage_start_date", "reservation_end_time", "reservation_start_time", "savings_plan_end_time",
    "savings_plan_start_time",
]

_MAPS = {
    "cost_category": STRING_MAP,
    "discount": pa.map_(pa.string(), pa.float64()),
    "product": STRING_MAP,
    "resource_tags": STRING_MAP,
}

CUR2_SCHEMA = pa.schema(
    sorted(
        [(c, STRING) for c in _STRINGS]
        + [(c, DOUBLE) for c in _DOUBLES]
        + [(c, TIMESTAMP) for c in _TIMESTAMPS]
        + list(_MAPS.items())
    )
)

# What gpuledger reads; a delivery without one of these is schema drift and is quarantined.
REQUIRED_COLUMNS = (
    "bill_billing_period_start_date",
    "bill_billing_period_end_date",
    "bill_payer_account_id",
    "line_item_line_item_type",
    "line_item_usage_start_date",
    "line_item_usage_end_date",
    "line_item_unblended_cost",
    "line_item_currency_code",
    "line_item_product_code",
    "line_item_usage_type",
)
