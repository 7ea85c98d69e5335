{# The processes on each device (GPU or MIG instance) of each collector sample. #}
with source as (
    {{ first_delivery(source('raw', 'nvml_processes'), in_day_window('ts'), ['gpu_uuid', 'ts', 'pid']) }}
),

devices as (
    select distinct gpu_uuid, parent_gpu_uuid from {{ source('raw', 'nvml_gpu_samples') }}
    where {{ in_day_window('ts') }}
)

select
    'nvml' as telemetry_source,
    source.ts,
    source.host,
    source.gpu_index,
    coalesce(devices.parent_gpu_uuid, source.gpu_uuid) as gpu_uuid,
    source.gpu_uuid as device_uuid,
    source.process_name,
    source.container_id,
    source.pod_uid,
    cast(null as varchar) as pod,
    cast(null as varchar) as namespace,
    cast(null as varchar) as container,
    source.env,
    source.used_gpu_memory_bytes
from source
left join devices on source.gpu_uuid = devices.gpu_uuid
