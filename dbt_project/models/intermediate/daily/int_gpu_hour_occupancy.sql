{# Rule 3: for each GPU-hour with telemetry, which workloads held the GPU and for what share of
   the hour's samples. At each sample a holder holds its device's weight (the whole GPU, or a MIG
   instance's slices) times its share of the device (time-slicing: by GPU memory held); what no
   one holds is idle (workload null). Energy and busy time follow the same shares.
   Products of quantities are taken in double and cast back before they are summed (money.sql):
   a product of two DECIMAL(38, 12) is 128-bit arithmetic, 3 s of a 1,000-GPU day's 8 s here.
   timestamps is read twice, from its table each time: DuckDB would otherwise copy it into memory
   first (every sample of the days, 2.5 GB at 2,000 GPUs, which then spilled): 20.5 s -> 17.7 s
   at 2,000 GPUs, 5.9 s -> 5.4 s at 1,000. #}
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
        sum({{ quantity('samples.weight * cast(holders.share as double)') }}) as held
    from samples
    inner join holders on samples.ts = holders.ts and samples.device_uuid = holders.device_uuid
    group by samples.gpu_uuid, samples.ts, holders.workload
),

with_idle as (
    select gpu_uuid, ts, workload, held from held
    union all
    select
        timestamps.gpu_uuid,
        timestamps.ts,
        cast(null as varchar) as workload,
        {{ quantity('greatest(1 - coalesce(sum(held.held), 0), 0)') }} as held
    from timestamps
    left join held on timestamps.gpu_uuid = held.gpu_uuid and timestamps.ts = held.ts
    group by timestamps.gpu_uuid, timestamps.ts
)

select
    timestamps.resource_id,
    timestamps.gpu_index,
    timestamps.hour_start,
    with_idle.workload,
    max(timestamps.host) as host,
    timestamps.gpu_uuid,
    sum(with_idle.held) as held_samples,
    sum({{ quantity('cast(with_idle.held as double) * cast(timestamps.energy_kwh as double)') }}) as energy_kwh,
    sum({{ quantity('cast(with_idle.held as double) * coalesce(timestamps.util_gpu_pct, 0) / 100.0') }})
        as busy_samples
from with_idle
inner join timestamps on with_idle.gpu_uuid = timestamps.gpu_uuid and with_idle.ts = timestamps.ts
where with_idle.held > 0
group by timestamps.resource_id, timestamps.gpu_index, timestamps.hour_start, with_idle.workload,
    timestamps.gpu_uuid
