{# Cost per token by day, model and team. "Served" cost is the GPU time the team's requests
   used; "fully loaded" adds the deployment's idle time (idle_deployed) and the team's share of
   shared costs that followed this model. The input/output split of the served cost uses the
   token weights that split the cost between teams (measured per deployment-day where vLLM's
   timings allow, else configured). Energy and CO2e are those of the GPU time the model used. #}
with ledger as (
    select * from {{ ref('cost_ledger_hourly') }}
    where model is not null
),

token_weights as (
    select
        cast(hour_start as date) as day,
        model,
        team,
        sum(input_weight) as input_weight,
        sum(output_weight) as output_weight
    from {{ ref('int_request_deployments') }}
    group by cast(hour_start as date), model, team
),

daily as (
    select
        cast(hour_start as date) as day,
        model,
        team,
        currency,
        sum(requests) as requests,
        sum(input_tokens) as input_tokens,
        sum(cached_input_tokens) as cached_input_tokens,
        sum(output_tokens) as output_tokens,
        sum(case when category = 'inference' then effective_cost else 0 end) as inference_cost,
        sum(case when category = 'idle_deployed' then effective_cost else 0 end) as idle_deployed_cost,
        sum(case when category = 'shared' then effective_cost else 0 end) as shared_cost,
        sum(effective_cost) as fully_loaded_cost,
        sum(case when category in ('inference', 'idle_deployed') then gpu_hours else 0 end) as gpu_hours,
        sum(case when category in ('inference', 'idle_deployed') then busy_gpu_hours else 0 end) as busy_gpu_hours,
        sum(case when category in ('inference', 'idle_deployed') then energy_kwh else 0 end) as energy_kwh,
        sum(case when category in ('inference', 'idle_deployed') then co2e_kg else 0 end) as co2e_kg
    from ledger
    group by cast(hour_start as date), model, team, currency
),

weighted as (
    select
        daily.*,
        coalesce(token_weights.input_weight, 0) as input_weight,
        coalesce(token_weights.output_weight, 0) as output_weight
    from daily
    left join token_weights
        on daily.day = token_weights.day
        and daily.model = token_weights.model
        and daily.team = token_weights.team
)

select
    day,
    model,
    team,
    currency,
    requests,
    input_tokens,
    cached_input_tokens,
    output_tokens,
    {{ money('inference_cost') }} as inference_cost,
    {{ money('idle_deployed_cost') }} as idle_deployed_cost,
    {{ money('shared_cost') }} as shared_cost,
    {{ money('fully_loaded_cost') }} as fully_loaded_cost,
    case when input_tokens > 0 and input_weight + output_weight > 0 then
        {{ allocate('inference_cost', 'input_weight / (input_weight + output_weight) * 1e6 / input_tokens') }}
    end as cost_per_1m_input_tokens,
    case when output_tokens > 0 and input_weight + output_weight > 0 then
        {{ allocate('inference_cost', 'output_weight / (input_weight + output_weight) * 1e6 / output_tokens') }}
    end as cost_per_1m_output_tokens,
    case when input_tokens + output_tokens > 0 then
        {{ allocate('inference_cost', '1e6 / (input_tokens + output_tokens)') }}
    end as cost_per_1m_tokens,
    case when input_tokens + output_tokens > 0 then
        {{ allocate('fully_loaded_cost', '1e6 / (input_tokens + output_tokens)') }}
    end as cost_per_1m_tokens_fully_loaded,
    case when requests > 0 then {{ allocate('inference_cost', '1e3 / requests') }} end as cost_per_1k_requests,
    gpu_hours,
    case when gpu_hours > 0 then busy_gpu_hours / gpu_hours end as avg_gpu_utilization,
    energy_kwh,
    co2e_kg,
    case when input_tokens + output_tokens > 0 then co2e_kg * 1e6 / (input_tokens + output_tokens) end
        as co2e_kg_per_1m_tokens
from weighted
