{# Native FOCUS exports (1.0 to 1.3, any provider), normalised: enum spellings fixed
   case-insensitively (`Usage-based` -> `Usage-Based`), 1.3's ServiceProviderName accepted for
   ProviderName, missing ListCost falling back to BilledCost. #}
with source as (
    select * from {{ source('raw', 'focus_charges') }}
)

select
    _source_file || '#' || cast(_row_number as varchar) as charge_id,
    coalesce(provider_name, service_provider_name) as provider_name,
    invoice_issuer_name,
    billing_account_id,
    billing_account_name,
    sub_account_id,
    sub_account_name,
    invoice_id,
    {{ period_of('billing_period_start') }} as billing_period,
    billing_period_start,
    billing_period_end,
    charge_period_start,
    charge_period_end,
    billing_currency,
    case lower(charge_category)
        when 'usage' then 'Usage' when 'purchase' then 'Purchase' when 'tax' then 'Tax'
        when 'credit' then 'Credit' when 'adjustment' then 'Adjustment' else charge_category
    end as charge_category,
    case when lower(charge_class) = 'correction' then 'Correction' end as charge_class,
    charge_description,
    case lower(charge_frequency)
        when 'usage-based' then 'Usage-Based' when 'one-time' then 'One-Time' when 'recurring' then 'Recurring'
        else charge_frequency
    end as charge_frequency,
    {{ money('billed_cost') }} as billed_cost,
    {{ money('coalesce(effective_cost, billed_cost)') }} as effective_cost,
    {{ money('coalesce(list_cost, billed_cost)') }} as list_cost,
    {{ money('coalesce(contracted_cost, billed_cost)') }} as contracted_cost,
    {{ quantity('list_unit_price') }} as list_unit_price,
    {{ quantity('contracted_unit_price') }} as contracted_unit_price,
    {{ quantity('pricing_quantity') }} as pricing_quantity,
    pricing_unit,
    pricing_category,
    {{ quantity('consumed_quantity') }} as consumed_quantity,
    consumed_unit,
    commitment_discount_id,
    commitment_discount_category,
    commitment_discount_type,
    commitment_discount_status,
    resource_id,
    resource_name,
    resource_type,
    service_name,
    service_category,
    service_subcategory,
    sku_id,
    sku_price_id,
    region_id,
    region_name,
    availability_zone,
    tags,
    coalesce(
        {{ json_value('sku_price_details', "'InstanceType'") }},
        {{ json_value('sku_price_details', "'x_InstanceType'") }},
        split_part({{ json_value('x_provider_columns', "'x_UsageType'") }}, ':', 2),
        {{ regexp_capture('charge_description', ' ([a-z0-9-]+\\.[0-9a-z]+) (Spot )?Instance[- ][Hh]our') }}
    ) as x_instance_type,
    'focus' as x_source_format,
    _ingested_at as x_ingested_at
from source
