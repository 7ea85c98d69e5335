{# All GPU cost at ledger grain: deployments' cost by (team, model), jobs' cost to their team
   (rule 5), idle and unmonitored GPU-hours to the resource's tagged team (rule 7), with the
   carbon of the energy each row's GPU time drew. #}
with allocation as (
    select * from {{ ref('int_gpu_hour_allocation') }}
    where holder_kind <> 'inference' and {{ in_day_window('hour_start') }}
),

inference as (
    select * from {{ ref('int_inference_allocation') }} where {{ in_day_window('hour_start') }}
),

carbon as (
    select * from {{ ref('int_resource_carbon_factors') }}
),

entries as (
    select
        hour_start,
        billing_period,
        provider_name,
        billing_account_id,
        billing_currency,
        resource_id,
        team,
        cast(null as varchar) as model,
        workload,
        holder_kind as category,
        effective_cost,
        billed_cost,
        list_cost,
        gpu_hours,
        energy_kwh,
        busy_gpu_hours,
        0 as requests,
        0 as input_tokens,
        0 as cached_input_tokens,
        0 as output_tokens
    from allocation

    union all

    select
        hour_start,
        billing_period,
        provider_name,
        billing_account_id,
        billing_currency,
        resource_id,
        team,
        model,
        workload,
        category,
        effective_cost,
        billed_cost,
        list_cost,
        gpu_hours,
        energy_kwh,
        busy_gpu_hours,
        requests,
        input_tokens,
        cached_input_tokens,
        output_tokens
    from inference
)

select
    entries.*,
    {{ quantity('entries.energy_kwh * coalesce(carbon.pue * carbon.grid_kg_co2e_per_kwh, 0)') }} as co2e_kg
from entries
left join carbon
    on entries.resource_id = carbon.resource_id
    and entries.provider_name = carbon.provider_name
