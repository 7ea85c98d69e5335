{# The on-prem asset register as hourly FOCUS-shaped charges of its own (ProviderName
   'On-Premises'), so owned GPUs flow through the same attribution as cloud ones. Per server and
   hour: straight-line amortisation of the purchase price over its depreciation months (zero once
   written off), ops cost per GPU-month pro rata (730 hours a month), and energy: each GPU's
   metered kWh where telemetry saw it that hour, else its rated power for the hour (the charge's
   sku_id says which), times the site's PUE and electricity price.
   Charges cover the hours telemetry covers for the whole fleet, from the purchase date to
   in_service_until: a server keeps depreciating while it is switched off. #}
with assets as (
    select
        *,
        cast(purchase_date as timestamp) as depreciation_start,
        {{ add_months('purchase_date', 'depreciation_months') }} as depreciation_end
    from {{ ref('stg_config__on_prem_assets') }}
),

observed as (
    select * from {{ ref('int_gpu_hours_observed') }}
),

fleet_window as (
    select min(hour_start) as first_hour, max(hour_start) + interval 1 hour as end_hour
    from observed
),

in_service as (
    select
        assets.*,
        greatest(fleet_window.first_hour, assets.depreciation_start) as service_start,
        least(
            fleet_window.end_hour,
            coalesce(cast(assets.in_service_until as timestamp) + interval 1 day, fleet_window.end_hour)
        ) as service_end
    from assets
    cross join fleet_window
),

asset_hours as (
    select
        in_service.*,
        {{ hours_of('service_start', 'service_end') }} as hour_start
    from in_service
    where service_start < service_end
),

gpu_energy as (
    select
        asset_hours.resource_id,
        asset_hours.hour_start,
        sum({{ quantity('coalesce(observed.energy_kwh, asset_hours.rated_power_w_per_gpu / 1000.0)') }}) as kwh,
        count(observed.energy_kwh) = max(asset_hours.gpu_count) as fully_metered
    from (
        select asset_hours.*, {{ indexes_below('gpu_count') }} as gpu_index
        from asset_hours
    ) as asset_hours
    left join observed
        on asset_hours.resource_id = observed.resource_id
        and asset_hours.gpu_index = observed.gpu_index
        and asset_hours.hour_start = observed.hour_start
    group by asset_hours.resource_id, asset_hours.hour_start
),

components as (
    select
        asset_hours.*,
        'amortisation' as component,
        'Recurring' as charge_frequency,
        case when asset_hours.hour_start < asset_hours.depreciation_end
            then cast(asset_hours.purchase_price as double)
                / {{ seconds_between('asset_hours.depreciation_start', 'asset_hours.depreciation_end') }} * 3600
            else 0 end as amount,
        1.0 as quantity,
        'Hours' as unit,
        'onprem-amortisation' as sku_id
    from asset_hours
    union all
    select
        asset_hours.*,
        'ops',
        'Recurring',
        cast(asset_hours.ops_cost_per_gpu_month as double) * asset_hours.gpu_count / 730.0,
        asset_hours.gpu_count,
        'GPU-Hours',
        'onprem-ops'
    from asset_hours
    where asset_hours.ops_cost_per_gpu_month > 0
    union all
    select
        asset_hours.*,
        'energy',
        'Usage-Based',
        gpu_energy.kwh * asset_hours.pue * cast(asset_hours.electricity_price_per_kwh as double),
        gpu_energy.kwh * asset_hours.pue,
        'kWh',
        case when gpu_energy.fully_metered then 'onprem-energy-metered' else 'onprem-energy-rated' end
    from asset_hours
    inner join gpu_energy
        on asset_hours.resource_id = gpu_energy.resource_id
        and asset_hours.hour_start = gpu_energy.hour_start
)

select
    'onprem:' || resource_id || ':' || component || ':' || cast(hour_start as varchar) as charge_id,
    'On-Premises' as provider_name,
    'On-Premises' as invoice_issuer_name,
    'on-prem:' || site as billing_account_id,
    site as billing_account_name,
    cast(null as varchar) as sub_account_id,
    cast(null as varchar) as sub_account_name,
    cast(null as varchar) as invoice_id,
    {{ period_of('hour_start') }} as billing_period,
    date_trunc('month', hour_start) as billing_period_start,
    {{ add_months("date_trunc('month', hour_start)", 1) }} as billing_period_end,
    hour_start as charge_period_start,
    hour_start + interval 1 hour as charge_period_end,
    currency as billing_currency,
    'Usage' as charge_category,
    cast(null as varchar) as charge_class,
    component || ' of ' || host || ' (' || gpu_count || ' x ' || gpu_model || ')' as charge_description,
    charge_frequency,
    {{ money('amount') }} as billed_cost,
    {{ money('amount') }} as effective_cost,
    {{ money('amount') }} as list_cost,
    {{ money('amount') }} as contracted_cost,
    cast(null as decimal(38, 10)) as list_unit_price,
    cast(null as decimal(38, 10)) as contracted_unit_price,
    {{ quantity('quantity') }} as pricing_quantity,
    unit as pricing_unit,
    'Standard' as pricing_category,
    {{ quantity('quantity') }} as consumed_quantity,
    unit as consumed_unit,
    cast(null as varchar) as commitment_discount_id,
    cast(null as varchar) as commitment_discount_category,
    cast(null as varchar) as commitment_discount_type,
    cast(null as varchar) as commitment_discount_status,
    resource_id,
    host as resource_name,
    'GPU server' as resource_type,
    'On-prem GPU' as service_name,
    'Compute' as service_category,
    'Virtual Machines' as service_subcategory,
    sku_id,
    sku_id as sku_price_id,
    site as region_id,
    site as region_name,
    cast(null as varchar) as availability_zone,
    cast(null as varchar) as tags,
    'on-prem' as x_instance_type,
    {{ onprem_source_format() }} as x_source_format,
    gpu_model,
    gpu_count,
    team as team_tag
from components
