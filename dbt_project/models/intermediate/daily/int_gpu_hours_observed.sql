{# What telemetry saw of each GPU in each hour: how many samples and how much of the hour they
   cover (samples x the GPU's usual sampling interval that day), utilisation (mean and peak), peak memory
   use, energy and how it was measured. #}
{{ config(gpu_sliced=true) }}  {# a build of a slice of the GPUs replaces their rows only #}
with timestamps as (
    select * from {{ ref('int_gpu_timestamps') }} where {{ in_day_window('hour_start') }}
),

{# per day, so a day's figures never depend on which other days the run built #}
intervals as (
    select
        gpu_uuid,
        date_trunc('day', hour_start) as day,
        percentile_cont(0.5) within group (order by seconds_since_previous) as interval_seconds
    from timestamps
    where seconds_since_previous > 0
    group by gpu_uuid, date_trunc('day', hour_start)
)

select
    timestamps.resource_id,
    timestamps.host,
    timestamps.gpu_index,
    timestamps.gpu_uuid,
    timestamps.hour_start,
    max(timestamps.telemetry_source) as telemetry_source,
    count(*) as samples,
    least(1.0, count(*) * coalesce(max(intervals.interval_seconds), 0) / 3600.0) as coverage,
    avg(timestamps.util_gpu_pct) / 100.0 as avg_utilization,
    max(timestamps.util_gpu_pct) / 100.0 as peak_utilization,
    max(timestamps.memory_fraction) as peak_memory_fraction,
    sum(timestamps.energy_kwh) as energy_kwh,
    case
        when count(distinct timestamps.energy_method) > 1 then 'mixed'
        else max(timestamps.energy_method)
    end as energy_method
from timestamps
left join intervals
    on timestamps.gpu_uuid = intervals.gpu_uuid and date_trunc('day', timestamps.hour_start) = intervals.day
group by timestamps.resource_id, timestamps.host, timestamps.gpu_index, timestamps.gpu_uuid, timestamps.hour_start
