{# The ledger: every dollar of every bill in exactly one row, hourly, with the GPU time, energy,
   requests and tokens it paid for. Built by UTC day of hour_start, like the models under it
   (models/intermediate/hourly). #}
{{ config(materialized='incremental', incremental_strategy='append', on_schema_change='sync_all_columns',
          pre_hook="{{ delete_day_window() }}") }}

with gpu as (
    select * from {{ ref('int_gpu_ledger') }} where {{ in_day_window('hour_start') }}
),

non_gpu as (
    select * from {{ ref('int_non_gpu_allocation') }} where {{ in_day_window('hour_start') }}
),

entries as (
    select
        hour_start, billing_period, provider_name, billing_account_id, billing_currency, resource_id,
        team, model, workload, category, effective_cost, billed_cost, list_cost,
        gpu_hours, energy_kwh, co2e_kg, busy_gpu_hours, requests, input_tokens, cached_input_tokens,
        output_tokens
    from gpu
    union all
    select
        hour_start, billing_period, provider_name, billing_account_id, billing_currency, resource_id,
        team, model, workload, category, effective_cost, billed_cost, list_cost,
        0, 0, 0, 0, 0, 0, 0, 0
    from non_gpu
)

select
    hour_start,
    billing_period,
    provider_name as provider,
    billing_account_id,
    billing_currency as currency,
    resource_id,
    team,
    model,
    workload,
    category,
    {{ money('sum(effective_cost)') }} as effective_cost,
    {{ money('sum(billed_cost)') }} as billed_cost,
    {{ money('sum(list_cost)') }} as list_cost,
    sum(gpu_hours) as gpu_hours,
    sum(energy_kwh) as energy_kwh,
    sum(co2e_kg) as co2e_kg,
    sum(busy_gpu_hours) as busy_gpu_hours,
    cast(sum(requests) as bigint) as requests,
    cast(sum(input_tokens) as bigint) as input_tokens,
    cast(sum(output_tokens) as bigint) as output_tokens,
    cast(sum(cached_input_tokens) as bigint) as cached_input_tokens
from entries
group by hour_start, billing_period, provider_name, billing_account_id, billing_currency, resource_id,
    team, model, workload, category
