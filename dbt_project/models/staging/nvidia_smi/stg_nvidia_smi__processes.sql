{# nvidia-smi --query-compute-apps lines, each on the GPU sample it was taken with: the latest
   --query-gpu sample of the same GPU at or before it (the two commands run one after the other). #}
with processes as (
    {{ first_delivery(source('raw', 'nvidia_smi_processes'),
                      in_day_window('ts') ~ ' and ' ~ in_gpu_slice('gpu_uuid'),
                      ['host', 'gpu_uuid', 'ts', 'pid']) }}
),

samples as (
    select
        host,
        gpu_uuid,
        gpu_index,
        ts,
        lead(ts) over (partition by host, gpu_uuid order by ts) as next_ts
    from {{ ref('stg_nvidia_smi__gpu_samples') }}
)

select
    'nvidia-smi' as telemetry_source,
    samples.ts,
    processes.host,
    samples.gpu_index,
    processes.gpu_uuid,
    processes.gpu_uuid as device_uuid,
    processes.process_name,
    cast(null as varchar) as container_id,
    cast(null as varchar) as pod_uid,
    cast(null as varchar) as pod,
    cast(null as varchar) as namespace,
    cast(null as varchar) as container,
    cast(null as varchar) as env,
    processes.used_gpu_memory_bytes
from processes
inner join samples
    on processes.host = samples.host
    and processes.gpu_uuid = samples.gpu_uuid
    and processes.ts >= samples.ts
    and (processes.ts < samples.next_ts or samples.next_ts is null)
