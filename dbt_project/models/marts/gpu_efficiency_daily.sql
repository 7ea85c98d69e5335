{# How well each billed GPU was used each day, and what to do about it: stop or scale to zero a
   GPU idle for long stretches, move work that never needs more memory than a smaller GPU has to
   that GPU (the smallest current NVIDIA model in the seed with 20 % headroom), scale down outside
   business hours (08-20 UTC) a GPU busy only within them. #}
{% set idle_stretch_hours = 6 %}
with allocation as (
    select * from {{ ref('int_gpu_hour_allocation') }}
),

gpu_memory as (
    select gpu_model, max(gpu_memory_gib) as gpu_memory_gib
    from {{ ref('gpu_instance_types') }}
    -- not AMD, nor generations no longer sold
    where gpu_model not like 'Radeon%' and gpu_model not in ('K80 12GB', 'M60 8GB')
    group by gpu_model
),

gpu_hours as (
    select
        resource_id,
        gpu_index,
        hour_start,
        sum(case when holder_kind = 'idle' then fraction else 0 end) >= 0.95 as is_idle,
        sum(busy_gpu_hours) as busy_gpu_hours
    from allocation
    group by resource_id, gpu_index, hour_start
),

idle_streaks as (
    select
        resource_id,
        gpu_index,
        cast(hour_start as date) as day,
        count(*) as streak_hours
    from (
        select
            gpu_hours.*,
            sum(case when is_idle then 0 else 1 end) over (
                partition by resource_id, gpu_index, cast(hour_start as date) order by hour_start rows unbounded preceding
            ) as streak
        from gpu_hours
    ) as numbered
    where is_idle
    group by resource_id, gpu_index, cast(hour_start as date), streak
),

longest_idle as (
    select resource_id, gpu_index, day, max(streak_hours) as longest_idle_hours
    from idle_streaks
    group by resource_id, gpu_index, day
),

business_hours as (
    select
        resource_id,
        gpu_index,
        cast(hour_start as date) as day,
        sum(case when extract(hour from hour_start) between 8 and 19 then busy_gpu_hours else 0 end) as busy_inside,
        sum(case when extract(hour from hour_start) between 8 and 19 then 0 else busy_gpu_hours end) as busy_outside,
        sum(case when extract(hour from hour_start) between 8 and 19 then 0 else 1 end) as hours_outside
    from gpu_hours
    group by resource_id, gpu_index, cast(hour_start as date)
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
),

smaller_gpus as (
    select day, resource_id, gpu_index, gpu_model
    from (
        select
            memory.day,
            memory.resource_id,
            memory.gpu_index,
            candidate.gpu_model,
            row_number() over (
                partition by memory.day, memory.resource_id, memory.gpu_index
                order by candidate.gpu_memory_gib, candidate.gpu_model
            ) as smallest
        from memory
        inner join daily
            on memory.day = daily.day and memory.resource_id = daily.resource_id and memory.gpu_index = daily.gpu_index
            and daily.held_hours > 0
        inner join gpu_memory as this_gpu on daily.gpu_model = this_gpu.gpu_model
        inner join gpu_memory as candidate
            on candidate.gpu_memory_gib < this_gpu.gpu_memory_gib
            and candidate.gpu_memory_gib >= 1.2 * memory.peak_memory_fraction * this_gpu.gpu_memory_gib
    ) as ranked
    where smallest = 1
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
    longest_idle.longest_idle_hours,
    smaller.gpu_model as smaller_gpu_model,
    daily.energy_kwh,
    {{ money('daily.effective_cost') }} as effective_cost,
    {{ money('daily.idle_cost') }} as idle_cost,
    {{ money('daily.unmonitored_cost') }} as unmonitored_cost,
    case
        when daily.unmonitored_hours > 0.5 * daily.billed_gpu_hours
            then 'no telemetry for most of the day: run gpuledger collect (or ship nvidia-smi / dcgm-exporter files)'
        when longest_idle.longest_idle_hours >= {{ idle_stretch_hours }}
            then 'idle ' || longest_idle.longest_idle_hours || ' h in a row: stop it or scale it to zero when idle'
        when business_hours.hours_outside >= 8 and business_hours.busy_inside > 0
            and business_hours.busy_outside < 0.05 * business_hours.busy_inside
            then 'busy only 08-20 UTC: schedule a scale-down outside business hours'
        when smaller.gpu_model is not null
            then 'peak memory ' || cast(round(memory.peak_memory_fraction * this_gpu.gpu_memory_gib) as integer)
                || ' GiB fits a ' || smaller.gpu_model || ': move it to that GPU (or a MIG slice)'
        when daily.held_hours > 0 and daily.utilized_hours < 0.2 * daily.held_hours
            then 'held but barely used: batch more work onto it, or share it'
    end as recommendation
from daily
left join memory
    on daily.day = memory.day and daily.resource_id = memory.resource_id and daily.gpu_index = memory.gpu_index
left join longest_idle
    on daily.day = longest_idle.day
    and daily.resource_id = longest_idle.resource_id
    and daily.gpu_index = longest_idle.gpu_index
left join business_hours
    on daily.day = business_hours.day
    and daily.resource_id = business_hours.resource_id
    and daily.gpu_index = business_hours.gpu_index
left join gpu_memory as this_gpu on daily.gpu_model = this_gpu.gpu_model
left join smaller_gpus as smaller
    on daily.day = smaller.day
    and daily.resource_id = smaller.resource_id
    and daily.gpu_index = smaller.gpu_index
