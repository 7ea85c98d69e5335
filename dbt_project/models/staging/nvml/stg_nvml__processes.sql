{# The processes on each device (GPU or MIG instance) of each collector sample. A MIG instance's
   processes belong to its physical GPU's slice (macros/day_window.sql), which only the samples
   know: a build of a slice reads the processes of the devices whose GPU is in it, or whose own
   uuid is (a device without samples), and keeps those whose GPU is in it. #}
{% set devices_in_slice %}
    (gpu_uuid in (
        select gpu_uuid from {{ source('raw', 'nvml_gpu_samples') }}
        where {{ in_day_window('ts') }} and {{ in_gpu_slice('coalesce(parent_gpu_uuid, gpu_uuid)') }}
    ) or {{ in_gpu_slice('gpu_uuid') }})
{% endset %}

with source as (
    {{ first_delivery(source('raw', 'nvml_processes'),
                      in_day_window('ts') ~ (' and ' ~ devices_in_slice if gpu_slice() else ''),
                      ['gpu_uuid', 'ts', 'pid']) }}
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
where {{ in_gpu_slice('coalesce(devices.parent_gpu_uuid, source.gpu_uuid)') }}
