{# GPU waste as it happens: a billed GPU whose utilisation stayed under the configured level for
   at least the configured number of hours in a row (alerts.idle_gpu_* in gpuledger.yaml). One row
   per streak, with what its hours cost. Telemetry lands hourly, so this fires before the day's
   bill is complete. #}
with gpu_hours as (
    select
        resource_id,
        gpu_index,
        provider_name,
        billing_currency,
        hour_start,
        max(team) filter (where holder_kind in ('idle', 'unmonitored')) as idle_team,
        sum(gpu_hours) as gpu_hours,
        sum(busy_gpu_hours) as busy_gpu_hours,
        sum(effective_cost) as effective_cost,
        bool_or(holder_kind = 'unmonitored') as is_unmonitored
    from {{ ref('int_gpu_hour_allocation') }}
    group by resource_id, gpu_index, provider_name, billing_currency, hour_start
),

settings as (
    select * from {{ ref('stg_config__settings') }}
),

flagged as (
    select
        gpu_hours.*,
        not gpu_hours.is_unmonitored and gpu_hours.gpu_hours > 0
            and gpu_hours.busy_gpu_hours < settings.idle_gpu_utilization_below * gpu_hours.gpu_hours as is_idle
    from gpu_hours
    cross join settings
),

idle_hours as (
    -- consecutive clock hours share an island number: an hour missing from the bill ends a streak
    select
        flagged.*,
        {{ seconds_between("cast('1970-01-01' as timestamp)", 'hour_start') }} / 3600
            - row_number() over (partition by resource_id, gpu_index order by hour_start) as island
    from flagged
    where is_idle
)

select
    resource_id,
    gpu_index,
    provider_name,
    billing_currency as currency,
    max(idle_team) as team,
    min(hour_start) as streak_start,
    max(hour_start) + interval 1 hour as streak_end,
    count(*) as hours,
    {{ money('sum(effective_cost)') }} as effective_cost
from idle_hours
cross join settings
group by resource_id, gpu_index, provider_name, billing_currency, island, settings.idle_gpu_consecutive_hours
having count(*) >= settings.idle_gpu_consecutive_hours
