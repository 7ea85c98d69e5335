with source as (
    select * from {{ source('raw', 'nvml_gpu_samples') }}
)

select
    ts,
    host,
    nullif(resource_id, '') as resource_id,
    gpu_index,
    gpu_uuid,
    gpu_name,
    mem_total_bytes,
    mem_used_bytes,
    util_gpu_pct,
    power_usage_mw,
    total_energy_mj,
    process_count,
    _source_file
from source
