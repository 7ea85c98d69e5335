{# gpuledger collector samples in the common telemetry shape (see int_gpu_samples). A GPU in MIG
   mode is one row with the energy and weight 0, plus a row per MIG instance weighing its share
   of the GPU's compute slices. A sample delivered twice counts once. #}
with source as (
    {{ first_delivery(source('raw', 'nvml_gpu_samples'),
                      in_sample_window('ts') ~ ' and ' ~ in_gpu_slice('coalesce(parent_gpu_uuid, gpu_uuid)'),
                      ['gpu_uuid', 'ts']) }}
)

select
    'nvml' as telemetry_source,
    ts,
    host,
    nullif(resource_id, '') as resource_id,
    gpu_index,
    coalesce(parent_gpu_uuid, gpu_uuid) as gpu_uuid,
    gpu_uuid as device_uuid,
    case
        when parent_gpu_uuid is not null then cast(mig_slices as double) / mig_total_slices
        when coalesce(mig_mode, false) then 0.0
        else 1.0
    end as weight,
    gpu_name,
    util_gpu_pct,
    mem_used_bytes,
    mem_total_bytes,
    power_usage_mw / 1000.0 as power_w,
    total_energy_mj as energy_mj
from source
