{# How well each billed GPU was used each day, and what to do about it. #}
with allocation as (
    select * from {{ ref('int_gpu_hour_allocation') }}
),

observed as (
    select * from {{ ref('int_gpu_hours_observed') }}
),

daily as (
    select
        cast(hour_start as date) as day,
        provider_name,
        billing_currency,
        resource_id,
        gpu_index,
        max(gpu_model) as gpu_model,
        sum(gpu_hours) as billed_gpu_hours,
        sum(case when holder_kind in ('inference', 'training', 'batch') then gpu_hours else 0 end) as held_hours,
        sum(case when holder_kind = 'idle' then gpu_hours else 0 end) as idle_hours,
        sum(case when holder_kind = 'unmonitored' then gpu_hours else 0 end) as unmonitored_hours,
        sum(busy_gpu_hours) as utilized_hours,
        sum(energy_kwh) as energy_kwh,
        sum(effective_cost) as effective_cost,
        sum(case when holder_kind = 'idle' then effective_cost else 0 end) as idle_cost,
        sum(case when holder_kind = 'unmonitored' then effective_cost else 0 end) as unmonitored_cost
    from allocation
    group by cast(hour_start as date), provider_name, billing_currency, resource_id, gpu_index
),

memory as (
    select cast(hour_start as date) as day, resource_id, gpu_index, max(peak_memory_fraction) as peak_memory_fraction
    from observed
    group by cast(hour_start as date), resource_id, gpu_index
)

select
    daily.day,
    daily.provider_name as provider,
    daily.resource_id,
    daily.gpu_index,
    daily.gpu_model,
    daily.billing_currency as currency,
    daily.billed_gpu_hours,
    daily.held_hours,
    daily.idle_hours,
    daily.unmonitored_hours,
    case when daily.billed_gpu_hours > daily.unmonitored_hours
        then daily.utilized_hours / (daily.billed_gpu_hours - daily.unmonitored_hours) end as avg_utilization,
    memory.peak_memory_fraction,
    daily.energy_kwh,
    {{ money('daily.effective_cost') }} as effective_cost,
    {{ money('daily.idle_cost') }} as idle_cost,
    {{ money('daily.unmonitored_cost') }} as unmonitored_cost,
    case
        when daily.unmonitored_hours > 0.5 * daily.billed_gpu_hours
            then 'no telemetry for most of the day: run gpuledger collect (or ship nvidia-smi / dcgm-exporter files)'
        when daily.idle_hours >= 0.5 * daily.billed_gpu_hours
            then 'idle most of the day: stop it, or let another workload share it'
        when daily.held_hours > 0 and memory.peak_memory_fraction < 0.35
            then 'under 35 % of GPU memory at peak: a smaller GPU or a MIG slice would do'
        when daily.held_hours > 0 and daily.utilized_hours < 0.2 * daily.held_hours
            then 'held but barely used: batch more work onto it, or share it'
    end as recommendation
from daily
left join memory
    on daily.day = memory.day and daily.resource_id = memory.resource_id and daily.gpu_index = memory.gpu_index
