{# Rule 3: for each GPU-hour with telemetry, which workloads held the GPU and for what share of
   the hour's samples. At each sample a holder holds its device's weight (the whole GPU, or a MIG
   instance's slices) times its share of the device (time-slicing: by GPU memory held); what no
   one holds is idle (workload null). Energy and busy time follow the same shares.
   Products of quantities are taken in double and cast back before they are summed (money.sql):
   a product of two DECIMAL(38, 12) is 128-bit arithmetic, 3 s of a 1,000-GPU day's 8 s here.
   Two paths, one per kind of GPU (int_gpu_timestamps.one_row_per_time):
   - a GPU whose only device is itself, seen by its own collector (nearly all of them): its
     timestamps are its samples, of weight 1, so each meets its holders in one left join; a sample
     no one holds is idle whole, one that a lone holder holds is not idle at all, and only the
     samples several holders share (int_gpu_sample_holders.only_holder) are summed for what they leave;
   - any other GPU (MIG, several telemetry sources): its samples meet their devices' holders, the
     held rows are summed per sample, and each of its timestamps is idle for what they leave. A
     held row is a device's workload at a sample: two MIG instances holding one workload are two
     rows, their energy and busy products each rounded to 12 decimals.
   The second path was every GPU's: on a 1,000-GPU day (no MIG), summing 7 M held rows per sample
   and joining them back to the timestamps twice took 6.2-6.5 s (12.0-12.8 s of CPU); the two
   paths take 1.8-2.4 s (3.5-4.6 s), 2.5 s with 10 GPUs down the second path, 7.1 s with all
   1,000, the same rows each time (except all both ways). The samples are read only when some GPU
   takes the second path (then all of them: the GPU filter does not pass their de-duplication).
   timestamps and holders are read from their tables each time: DuckDB would otherwise copy them
   into memory first (every sample of the days, 2.5 GB at 2,000 GPUs, which then spilled). #}
{{ config(gpu_sliced=true) }}  {# a build of a slice of the GPUs replaces their rows only #}
{# what each held or idle row carries from its sample's timestamp, ahead of its workload and held share #}
{% set sample_columns = ['resource_id', 'gpu_index', 'hour_start', 'host', 'gpu_uuid', 'energy_kwh', 'util_gpu_pct'] %}
with timestamps as not materialized (
    select * from {{ ref('int_gpu_timestamps') }} where {{ in_day_window('hour_start') }}
),

holders as not materialized (
    select * from {{ ref('int_gpu_sample_holders') }} where {{ in_day_window('hour_start') }}
),

whole_gpu_samples as (
    select
        {% for column in sample_columns %}timestamps.{{ column }}, {% endfor %}
        holders.workload,
        coalesce({{ quantity('cast(holders.share as double)') }}, {{ quantity('1') }}) as held
    from timestamps
    left join holders on timestamps.gpu_uuid = holders.device_uuid and timestamps.ts = holders.ts
    where timestamps.one_row_per_time
),

shared_samples_left as (
    select
        {% for column in sample_columns %}timestamps.{{ column }}, {% endfor %}
        cast(null as varchar) as workload,
        {{ quantity('greatest(1 - shared.held, 0)') }} as held
    from (
        select device_uuid, ts, sum({{ quantity('cast(share as double)') }}) as held
        from holders
        where not only_holder
        group by device_uuid, ts
    ) as shared
    inner join timestamps on shared.device_uuid = timestamps.gpu_uuid and shared.ts = timestamps.ts
    where timestamps.one_row_per_time
),

other_timestamps as not materialized (
    select * from timestamps where not one_row_per_time
),

samples as (
    select * from {{ ref('int_gpu_samples') }}
    where {{ in_day_window('hour_start') }}
        and gpu_uuid in (select gpu_uuid from other_timestamps)
),

held as (
    select
        samples.gpu_uuid,
        samples.ts,
        holders.workload,
        {{ quantity('samples.weight * cast(holders.share as double)') }} as held
    from samples
    inner join holders on samples.ts = holders.ts and samples.device_uuid = holders.device_uuid
),

held_per_sample as (
    select gpu_uuid, ts, sum(held) as held
    from held
    group by gpu_uuid, ts
),

other_gpu_samples as (
    select
        {% for column in sample_columns %}other_timestamps.{{ column }}, {% endfor %}
        held.workload,
        held.held
    from held
    inner join other_timestamps on held.gpu_uuid = other_timestamps.gpu_uuid and held.ts = other_timestamps.ts
    union all
    select
        {% for column in sample_columns %}other_timestamps.{{ column }}, {% endfor %}
        cast(null as varchar) as workload,
        {{ quantity('greatest(1 - coalesce(held_per_sample.held, 0), 0)') }} as held
    from other_timestamps
    left join held_per_sample
        on other_timestamps.gpu_uuid = held_per_sample.gpu_uuid and other_timestamps.ts = held_per_sample.ts
),

with_idle as (
    select * from whole_gpu_samples
    union all
    select * from shared_samples_left
    union all
    select * from other_gpu_samples
)

select
    resource_id,
    gpu_index,
    hour_start,
    workload,
    max(host) as host,
    gpu_uuid,
    sum(held) as held_samples,
    sum({{ quantity('cast(held as double) * cast(energy_kwh as double)') }}) as energy_kwh,
    sum({{ quantity('cast(held as double) * coalesce(util_gpu_pct, 0) / 100.0') }}) as busy_samples
from with_idle
where held > 0
group by resource_id, gpu_index, hour_start, workload, gpu_uuid
