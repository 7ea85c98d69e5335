with source as (
    select * from {{ source('raw', 'nvml_processes') }}
)

select
    ts,
    host,
    gpu_uuid,
    pid,
    process_name,
    container_id,
    pod_uid,
    env,
    used_gpu_memory_bytes
from source
