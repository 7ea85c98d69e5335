{# One row per physical GPU per sample time, whatever devices (MIG instances) it has: its
   utilisation, peak memory use and the energy since the previous sample.
   Energy: the rise of the GPU's energy counter (NVML, DCGM: mJ since the driver loaded) when the
   previous sample is at most a minute back and the counter did not go backwards; else (no
   counter, as with nvidia-smi, or a counter reset) power draw x time since the previous sample;
   nothing across a gap of over a minute (collector down: the energy is unknown). The build's days
   only (int_gpu_samples).
   Only a GPU with several devices (MIG) or several telemetry sources has more than one sample row
   at a time to combine. A GPU whose every row in the window is its own collector sample has one
   per time (first_delivery keeps one per device and time), so its rows are final as they are: one
   window over all rows gives each its previous sample and says whether its GPU is such a GPU, and
   only the other GPUs' rows are grouped by time (and then find their previous time again). On a
   1,000-GPU day: 8.5-9.4 s of CPU instead of 11.6-13.2 s, the same rows. one_row_per_time says
   which kind of GPU a row is of: int_gpu_hour_occupancy meets such a GPU's holders directly.
   The hour is taken from ts at the end, not aggregated. #}
{{ config(materialized='table') }}
{% set energy_kwh %}
    case
        when previous_ts is null or ts - previous_ts > interval '60 seconds' then 0
        when energy_mj is not null and previous_energy_mj is not null and energy_mj >= previous_energy_mj
            then (energy_mj - previous_energy_mj) / 3600000000.0
        when power_w is not null then power_w * {{ seconds_between('previous_ts', 'ts') }} / 3600000.0
        else 0
    end
{% endset %}

with samples as (
    select
        gpu_uuid, ts, resource_id, host, gpu_index, telemetry_source, device_uuid, weight, util_gpu_pct,
        energy_mj, power_w,
        cast(mem_used_bytes as double) / nullif(mem_total_bytes, 0) as memory_fraction
    from {{ ref('int_gpu_samples') }}
    where {{ in_sample_window('ts') }}
),

sample_previous as (
    select
        samples.*,
        lag(ts) over by_gpu as previous_ts,
        lag(energy_mj) over by_gpu as previous_energy_mj,
        bool_and(coalesce(telemetry_source = 'nvml' and device_uuid = gpu_uuid and weight = 1, false))
            over whole_gpu as one_row_per_time
    from samples
    window by_gpu as (partition by gpu_uuid order by ts),
           whole_gpu as (by_gpu rows between unbounded preceding and unbounded following)
),

combined as (
    select
        gpu_uuid,
        ts,
        max(resource_id) as resource_id,
        max(host) as host,
        max(gpu_index) as gpu_index,
        max(telemetry_source) as telemetry_source,
        max(case when device_uuid = gpu_uuid then energy_mj end) as energy_mj,
        max(case when device_uuid = gpu_uuid then power_w end) as power_w,
        coalesce(
            max(case when device_uuid = gpu_uuid and weight > 0 then util_gpu_pct end),
            sum(case when weight > 0 then weight * util_gpu_pct end) / nullif(sum(case when weight > 0 and
                util_gpu_pct is not null then weight end), 0)
        ) as util_gpu_pct,
        max(memory_fraction) as memory_fraction
    from sample_previous
    where not one_row_per_time
    group by gpu_uuid, ts
),

with_previous as (
    select
        gpu_uuid, ts, resource_id, host, gpu_index, telemetry_source, energy_mj, power_w, util_gpu_pct,
        memory_fraction,
        previous_ts,
        previous_energy_mj,
        one_row_per_time
    from sample_previous
    where one_row_per_time
    union all
    select
        combined.*,
        lag(ts) over by_gpu as previous_ts,
        lag(energy_mj) over by_gpu as previous_energy_mj,
        false as one_row_per_time
    from combined
    window by_gpu as (partition by gpu_uuid order by ts)
)

select
    gpu_uuid,
    ts,
    resource_id,
    host,
    gpu_index,
    date_trunc('hour', ts) as hour_start,
    telemetry_source,
    util_gpu_pct,
    memory_fraction,
    {{ seconds_between('previous_ts', 'ts') }} as seconds_since_previous,
    case
        when previous_ts is null or ts - previous_ts > interval '60 seconds' then null
        when energy_mj is not null and previous_energy_mj is not null and energy_mj >= previous_energy_mj
            then 'counter'
        when power_w is not null then 'power'
    end as energy_method,
    {{ quantity(energy_kwh) }} as energy_kwh,
    one_row_per_time
from with_previous
where {{ in_day_window('ts') }}
