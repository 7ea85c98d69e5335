{# Oracle Cloud cost reports in FOCUS shape: the tenancy is the billing account, the
   compartment the sub-account; overage cost adds to the billed cost. #}
with source as (
    select * from {{ source('raw', 'oci_cost_report') }}
)

select
    _source_file || '#' || cast(_row_number as varchar) as charge_id,
    'Oracle' as provider_name,
    'Oracle' as invoice_issuer_name,
    tenant_id as billing_account_id,
    cast(null as varchar) as billing_account_name,
    compartment_id as sub_account_id,
    compartment_name as sub_account_name,
    cast(null as varchar) as invoice_id,
    {{ period_of('interval_usage_start') }} as billing_period,
    date_trunc('month', interval_usage_start) as billing_period_start,
    date_trunc('month', interval_usage_start) + interval '1 month' as billing_period_end,
    interval_usage_start as charge_period_start,
    interval_usage_end as charge_period_end,
    currency_code as billing_currency,
    'Usage' as charge_category,
    case when lower(is_correction) = 'true' then 'Correction' end as charge_class,
    product_description as charge_description,
    'Usage-Based' as charge_frequency,
    {{ money('my_cost + coalesce(my_cost_overage, 0)') }} as billed_cost,
    {{ money('my_cost + coalesce(my_cost_overage, 0)') }} as effective_cost,
    {{ money('my_cost + coalesce(my_cost_overage, 0)') }} as list_cost,
    {{ money('my_cost + coalesce(my_cost_overage, 0)') }} as contracted_cost,
    {{ quantity('unit_price') }} as list_unit_price,
    {{ quantity('unit_price') }} as contracted_unit_price,
    {{ quantity('billed_quantity') }} as pricing_quantity,
    sku_unit_description as pricing_unit,
    'Standard' as pricing_category,
    {{ quantity('billed_quantity') }} as consumed_quantity,
    sku_unit_description as consumed_unit,
    cast(null as varchar) as commitment_discount_id,
    cast(null as varchar) as commitment_discount_category,
    cast(null as varchar) as commitment_discount_type,
    cast(null as varchar) as commitment_discount_status,
    resource_id,
    resource_id as resource_name,
    cast(null as varchar) as resource_type,
    service as service_name,
    case
        when service in ('COMPUTE', 'CONTAINER_ENGINE') then 'Compute'
        when service in ('BLOCK_STORAGE', 'OBJECT_STORAGE', 'FILE_STORAGE') then 'Storage'
        when service in ('NETWORK', 'LOAD_BALANCER', 'DNS') then 'Networking'
        when service in ('DATABASE', 'MYSQL') then 'Databases'
        when service in ('TELEMETRY', 'LOGGING', 'MONITORING') then 'Management and Governance'
        else 'Other'
    end as service_category,
    cast(null as varchar) as service_subcategory,
    product_sku as sku_id,
    product_sku as sku_price_id,
    region as region_id,
    region as region_name,
    availability_domain as availability_zone,
    tags,
    cast(null as varchar) as x_instance_type,
    'oci-cost-report' as x_source_format,
    _ingested_at as x_ingested_at
from source
