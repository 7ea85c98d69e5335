{# Who held each device at each sample: processes (collector, nvidia-smi) and pods
   (dcgm-exporter), with the workload the config's rules give them. Several holders on one
   device (time-slicing, co-located processes) share it by the GPU memory each holds when every
   one of them reports it, else equally. The build's days only (int_gpu_samples).
   Nearly every device has one holder at a sample, which holds all of it: a window over each
   device's samples in time order finds the holders that share a sample with another (their
   neighbours have the same ts), and only those are grouped by workload and shared out. Grouping
   every holder (7 M rows, nearly all alone, on a 1,000-GPU day) took twice as long: 8.0-9.0 s
   of CPU against 4.2-4.5 s, the same rows. only_holder marks the lone ones (int_gpu_hour_occupancy
   sums only the others' shares per sample). #}
{{ config(materialized='table') }}
{% set holder_columns = ['telemetry_source', 'ts', 'host', 'gpu_index', 'gpu_uuid', 'device_uuid', 'process_name',
                         'container_id', 'pod_uid', 'pod', 'namespace', 'container', 'env',
                         'used_gpu_memory_bytes'] %}

with holders as (
    {% for model in ['stg_nvml__processes', 'stg_nvidia_smi__processes'] %}
    select {{ holder_columns | join(', ') }} from {{ ref(model) }} where {{ in_day_window('ts') }}
    union all
    {% endfor %}
    select
        telemetry_source, ts, host, gpu_index, gpu_uuid, device_uuid,
        null, null, null, pod, namespace, container, null, mem_used_bytes
    from {{ ref('stg_dcgm__samples') }}
    where pod is not null and {{ in_day_window('ts') }}
),

process_workloads as (
    select * from {{ ref('stg_config__process_workloads') }}
),

matched as (
    select
        holders.ts,
        holders.device_uuid,
        coalesce(process_workloads.workload, 'unmatched') as workload,
        holders.used_gpu_memory_bytes
    from holders
    left join process_workloads
        on coalesce(holders.host, '') = coalesce(process_workloads.host, '')
        and coalesce(holders.gpu_index, -1) = coalesce(process_workloads.gpu_index, -1)
        and coalesce(holders.gpu_uuid, '') = coalesce(process_workloads.gpu_uuid, '')
        and coalesce(holders.process_name, '') = coalesce(process_workloads.process_name, '')
        and coalesce(holders.container_id, '') = coalesce(process_workloads.container_id, '')
        and coalesce(holders.pod_uid, '') = coalesce(process_workloads.pod_uid, '')
        and coalesce(holders.pod, '') = coalesce(process_workloads.pod, '')
        and coalesce(holders.namespace, '') = coalesce(process_workloads.namespace, '')
        and coalesce(holders.container, '') = coalesce(process_workloads.container, '')
        and coalesce(holders.env, '') = coalesce(process_workloads.env, '')
),

flagged as (
    select
        *,
        coalesce(lag(ts) over by_device = ts or lead(ts) over by_device = ts, false) as shares_the_sample
    from matched
    window by_device as (partition by device_uuid order by ts)
),

by_workload as (
    select
        ts,
        device_uuid,
        workload,
        sum(used_gpu_memory_bytes) as used_gpu_memory_bytes,
        case when count(used_gpu_memory_bytes) = count(*) then 1 else 0 end as memory_known
    from flagged
    where shares_the_sample
    group by ts, device_uuid, workload
),

device_samples as (
    select
        ts,
        device_uuid,
        min(memory_known) as memory_known,
        sum(used_gpu_memory_bytes) as used_gpu_memory_bytes,
        count(*) as workloads
    from by_workload
    group by ts, device_uuid
)

select
    ts,
    date_trunc('hour', ts) as hour_start,
    device_uuid,
    workload,
    {{ quantity('1') }} as share,
    true as only_holder
from flagged
where not shares_the_sample
union all
select
    by_workload.ts,
    date_trunc('hour', by_workload.ts) as hour_start,
    by_workload.device_uuid,
    by_workload.workload,
    {{ quantity('''case
        when device_samples.memory_known = 1 and device_samples.used_gpu_memory_bytes > 0
            then cast(by_workload.used_gpu_memory_bytes as double) / device_samples.used_gpu_memory_bytes
        else 1.0 / device_samples.workloads
    end''') }} as share,
    false as only_holder
from by_workload
inner join device_samples
    on by_workload.ts = device_samples.ts and by_workload.device_uuid = device_samples.device_uuid
