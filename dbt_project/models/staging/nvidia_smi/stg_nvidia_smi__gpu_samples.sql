{# nvidia-smi --query-gpu samples in the common telemetry shape. No energy counter: energy is
   integrated from power draw (int_gpu_hours_observed). #}
with source as (
    {{ first_delivery(source('raw', 'nvidia_smi_gpu_samples'),
                      in_sample_window('ts') ~ ' and ' ~ in_gpu_slice('gpu_uuid'),
                      ['host', 'gpu_uuid', 'ts']) }}
)

select
    'nvidia-smi' as telemetry_source,
    ts,
    host,
    cast(null as varchar) as resource_id,
    gpu_index,
    gpu_uuid,
    gpu_uuid as device_uuid,
    1.0 as weight,
    gpu_name,
    util_gpu_pct,
    mem_used_bytes,
    mem_total_bytes,
    power_draw_w as power_w,
    cast(null as bigint) as energy_mj
from source
