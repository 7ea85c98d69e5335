{# Rule 3: for each GPU-hour with telemetry, which workloads held the GPU and for what share of
   the hour's samples. At each sample a holder holds its device's weight (the whole GPU, or a MIG
   instance's slices) times its share of the device (time-slicing: by GPU memory held); what no
   one holds is idle (workload null). Energy and busy time follow the same shares.
   Products of quantities are taken in double and cast back before they are summed (money.sql):
   a product of two DECIMAL(38, 12) is 128-bit arithmetic, 3 s of a 1,000-GPU day's 8 s here.
   A held row is a device's workload at a sample, not summed per GPU, sample and workload first:
   only two MIG instances of one GPU holding the same workload made such a group of more than one
   row, and everything after it sums (grouping 7 M rows of one took a fifth of the model's CPU on a
   1,000-GPU day; the rows were the same). Such a pair's energy and busy products are then rounded
   to 12 decimals each rather than once for their sum.
   timestamps is read twice, from its table each time: DuckDB would otherwise copy it into memory
   first (every sample of the days, 2.5 GB at 2,000 GPUs, which then spilled): 20.5 s -> 17.7 s
   at 2,000 GPUs, 5.9 s -> 5.4 s at 1,000. Each sample's row carries its GPU's columns from the
   join that finds it (held) or that it came from (idle), rather than every row joining the
   timestamps again after the union: a fifth less CPU and 4.5 GB of memory instead of 5.7 GB on
   a 1,000-GPU day, the same rows. #}
{{ config(gpu_sliced=true) }}  {# a build of a slice of the GPUs replaces their rows only #}
with timestamps as not materialized (
    select * from {{ ref('int_gpu_timestamps') }} where {{ in_day_window('hour_start') }}
),

samples as (
    select * from {{ ref('int_gpu_samples') }} where {{ in_day_window('hour_start') }}
),

holders as (
    select * from {{ ref('int_gpu_sample_holders') }} where {{ in_day_window('hour_start') }}
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

with_idle as (
    select
        timestamps.resource_id,
        timestamps.gpu_index,
        timestamps.hour_start,
        held.workload,
        timestamps.host,
        timestamps.gpu_uuid,
        held.held,
        timestamps.energy_kwh,
        timestamps.util_gpu_pct
    from held
    inner join timestamps on held.gpu_uuid = timestamps.gpu_uuid and held.ts = timestamps.ts
    union all
    select
        timestamps.resource_id,
        timestamps.gpu_index,
        timestamps.hour_start,
        cast(null as varchar) as workload,
        timestamps.host,
        timestamps.gpu_uuid,
        {{ quantity('greatest(1 - coalesce(held_per_sample.held, 0), 0)') }} as held,
        timestamps.energy_kwh,
        timestamps.util_gpu_pct
    from timestamps
    left join held_per_sample
        on timestamps.gpu_uuid = held_per_sample.gpu_uuid and timestamps.ts = held_per_sample.ts
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
