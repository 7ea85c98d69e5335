{# Every ingested charge as a FOCUS 1.2 Cost and Usage dataset (column names and values as the
   specification spells them; gpuledger's own columns prefixed x_), for FOCUS tools and the
   FinOps Foundation's validator. A view: int_billing_charges renamed, so a build never copies a
   large organisation's every line item again. #}
{{ config(materialized='view') }}
with charges as (
    select * from {{ ref('int_billing_charges') }}
)

select
    availability_zone as "AvailabilityZone",
    billed_cost as "BilledCost",
    billing_account_id as "BillingAccountId",
    billing_account_name as "BillingAccountName",
    billing_currency as "BillingCurrency",
    billing_period_end as "BillingPeriodEnd",
    billing_period_start as "BillingPeriodStart",
    charge_category as "ChargeCategory",
    charge_class as "ChargeClass",
    charge_description as "ChargeDescription",
    charge_frequency as "ChargeFrequency",
    charge_period_end as "ChargePeriodEnd",
    charge_period_start as "ChargePeriodStart",
    commitment_discount_category as "CommitmentDiscountCategory",
    commitment_discount_id as "CommitmentDiscountId",
    commitment_discount_status as "CommitmentDiscountStatus",
    commitment_discount_type as "CommitmentDiscountType",
    consumed_quantity as "ConsumedQuantity",
    consumed_unit as "ConsumedUnit",
    contracted_cost as "ContractedCost",
    contracted_unit_price as "ContractedUnitPrice",
    effective_cost as "EffectiveCost",
    invoice_id as "InvoiceId",
    invoice_issuer_name as "InvoiceIssuerName",
    list_cost as "ListCost",
    list_unit_price as "ListUnitPrice",
    pricing_category as "PricingCategory",
    pricing_quantity as "PricingQuantity",
    pricing_unit as "PricingUnit",
    provider_name as "ProviderName",
    provider_name as "PublisherName",
    region_id as "RegionId",
    region_name as "RegionName",
    resource_id as "ResourceId",
    resource_name as "ResourceName",
    resource_type as "ResourceType",
    service_category as "ServiceCategory",
    service_name as "ServiceName",
    service_subcategory as "ServiceSubcategory",
    sku_id as "SkuId",
    sku_price_id as "SkuPriceId",
    sub_account_id as "SubAccountId",
    sub_account_name as "SubAccountName",
    tags as "Tags",
    charge_id as "x_ChargeId",
    billing_period as "x_BillingPeriod",
    x_instance_type as "x_InstanceType",
    gpu_model as "x_GpuModel",
    gpu_count as "x_GpuCount",
    team_tag as "x_Team",
    x_source_format as "x_SourceFormat"
from charges
