{# Azure cost details (EA / MCA) in FOCUS shape, following the FinOps Foundation's conversion
   rules: daily charges, an inclusive billing-period end date made exclusive, the VM size from
   AdditionalInfo.ServiceType. #}
with source as (
    select * from {{ source('raw', 'azure_cost_details') }}
)

select
    _source_file || '#' || cast(_row_number as varchar) as charge_id,
    'Microsoft' as provider_name,
    'Microsoft' as invoice_issuer_name,
    billing_account_id,
    billing_account_name,
    subscription_id as sub_account_id,
    subscription_name as sub_account_name,
    invoice_id,
    {{ period_of('coalesce(billing_period_start, usage_date)') }} as billing_period,
    billing_period_start,
    billing_period_end + interval '1 day' as billing_period_end,
    usage_date as charge_period_start,
    usage_date + interval '1 day' as charge_period_end,
    billing_currency,
    case charge_type
        when 'Usage' then 'Usage' when 'UnusedReservation' then 'Usage' when 'UnusedSavingsPlan' then 'Usage'
        when 'Purchase' then 'Purchase' when 'Tax' then 'Tax' when 'Refund' then 'Credit'
        else 'Adjustment'
    end as charge_category,
    case when charge_type = 'Refund' then 'Correction' end as charge_class,
    coalesce(product_name, meter_name) as charge_description,
    case frequency
        when 'UsageBased' then 'Usage-Based' when 'OneTime' then 'One-Time' when 'Recurring' then 'Recurring'
    end as charge_frequency,
    {{ money('cost') }} as billed_cost,
    {{ money('cost') }} as effective_cost,
    {{ money('coalesce(pay_g_price * quantity, cost)') }} as list_cost,
    {{ money('coalesce(unit_price * quantity, cost)') }} as contracted_cost,
    {{ quantity('pay_g_price') }} as list_unit_price,
    {{ quantity('unit_price') }} as contracted_unit_price,
    {{ quantity('quantity') }} as pricing_quantity,
    unit_of_measure as pricing_unit,
    case pricing_model
        when 'OnDemand' then 'Standard' when 'Spot' then 'Dynamic'
        when 'Reservation' then 'Committed' when 'SavingsPlan' then 'Committed'
    end as pricing_category,
    case when charge_type = 'Usage' then {{ quantity('quantity') }} end as consumed_quantity,
    unit_of_measure as consumed_unit,
    coalesce(benefit_id, reservation_id) as commitment_discount_id,
    case
        when lower(benefit_id) like '%/microsoft.capacity/%' or reservation_id is not null then 'Usage'
        when lower(benefit_id) like '%/microsoft.billingbenefits/%' then 'Spend'
    end as commitment_discount_category,
    case
        when lower(benefit_id) like '%/microsoft.capacity/%' or reservation_id is not null then 'Reservation'
        when lower(benefit_id) like '%/microsoft.billingbenefits/%' then 'Savings Plan'
    end as commitment_discount_type,
    case
        when charge_type in ('UnusedReservation', 'UnusedSavingsPlan') then 'Unused'
        when coalesce(benefit_id, reservation_id) is not null then 'Used'
    end as commitment_discount_status,
    resource_id,
    resource_name,
    consumed_service as resource_type,
    meter_category as service_name,
    case service_family
        when 'Compute' then 'Compute' when 'Storage' then 'Storage' when 'Networking' then 'Networking'
        when 'Databases' then 'Databases' when 'AI + Machine Learning' then 'AI and Machine Learning'
        when 'Analytics' then 'Analytics' else 'Other'
    end as service_category,
    cast(null as varchar) as service_subcategory,
    meter_id as sku_id,
    coalesce(part_number, meter_id) as sku_price_id,
    resource_location as region_id,
    resource_location as region_name,
    availability_zone,
    tags,
    case when meter_category = 'Virtual Machines' then {{ json_value('additional_info', "'ServiceType'") }} end
        as x_instance_type,
    'azure-cost-details' as x_source_format,
    _ingested_at as x_ingested_at
from source
