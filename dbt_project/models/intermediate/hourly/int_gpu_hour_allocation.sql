{# Rules 3 and 7: each billed GPU-hour split over its holders by occupancy; the unheld share is
   idle, and a GPU-hour without any telemetry is unmonitored. One row per GPU-hour and holder. #}
with gpu_hours as (
    select * from {{ ref('int_gpu_hour_cost') }} where {{ in_day_window('hour_start') }}
),

occupancy as (
    select * from {{ ref('int_gpu_hour_occupancy') }} where {{ in_day_window('hour_start') }}
),

workloads as (
    select * from {{ ref('stg_config__workloads') }}
),

samples_per_gpu_hour as (
    select resource_id, gpu_index, hour_start, sum(held_samples) as samples
    from occupancy
    group by resource_id, gpu_index, hour_start
),

monitored as (
    select
        gpu_hours.*,
        occupancy.workload,
        cast(occupancy.held_samples as double) / cast(samples_per_gpu_hour.samples as double) as fraction,
        occupancy.energy_kwh,
        cast(occupancy.busy_samples as double) / cast(samples_per_gpu_hour.samples as double) as busy_fraction
    from gpu_hours
    inner join samples_per_gpu_hour
        on gpu_hours.resource_id = samples_per_gpu_hour.resource_id
        and gpu_hours.gpu_index = samples_per_gpu_hour.gpu_index
        and gpu_hours.hour_start = samples_per_gpu_hour.hour_start
    inner join occupancy
        on gpu_hours.resource_id = occupancy.resource_id
        and gpu_hours.gpu_index = occupancy.gpu_index
        and gpu_hours.hour_start = occupancy.hour_start
),

unmonitored as (
    select
        gpu_hours.*,
        cast(null as varchar) as workload,
        1.0 as fraction,
        cast(null as double) as energy_kwh,
        cast(null as double) as busy_fraction
    from gpu_hours
    left join samples_per_gpu_hour
        on gpu_hours.resource_id = samples_per_gpu_hour.resource_id
        and gpu_hours.gpu_index = samples_per_gpu_hour.gpu_index
        and gpu_hours.hour_start = samples_per_gpu_hour.hour_start
    where samples_per_gpu_hour.samples is null
),

holders as (
    select *, true as is_monitored from monitored
    union all
    select *, false as is_monitored from unmonitored
)

select
    holders.hour_start,
    holders.billing_period,
    holders.provider_name,
    holders.billing_account_id,
    holders.billing_currency,
    holders.resource_id,
    holders.gpu_index,
    holders.gpu_model,
    holders.workload,
    case
        when not holders.is_monitored then 'unmonitored'
        when holders.workload is null then 'idle'
        when holders.workload = 'unmatched' then 'batch'
        else coalesce(workloads.workload_kind, 'batch')
    end as holder_kind,
    case
        when holders.workload is null or holders.workload = 'unmatched'
            then coalesce(holders.team_tag, '{{ var("unallocated_team") }}')
        else workloads.owner_team
    end as team,
    holders.fraction,
    {{ allocate('holders.effective_cost', 'holders.fraction') }} as effective_cost,
    {{ allocate('holders.billed_cost', 'holders.fraction') }} as billed_cost,
    {{ allocate('holders.list_cost', 'holders.fraction') }} as list_cost,
    {{ quantity('holders.billed_gpu_hours * holders.fraction') }} as gpu_hours,
    {{ quantity('coalesce(holders.energy_kwh, 0)') }} as energy_kwh,
    {{ quantity('holders.billed_gpu_hours * coalesce(holders.busy_fraction, 0)') }} as busy_gpu_hours
from holders
left join workloads on holders.workload = workloads.workload
