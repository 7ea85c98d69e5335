{# All GPU cost at ledger grain: deployments' cost by (team, model), jobs' cost to their team
   (rule 5), idle and unmonitored GPU-hours to the resource's tagged team (rule 7). #}
with allocation as (
    select * from {{ ref('int_gpu_hour_allocation') }}
    where holder_kind <> 'inference'
),

inference as (
    select * from {{ ref('int_inference_allocation') }}
)

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
