{# dcgm-exporter scrapes in the common telemetry shape. A MIG instance (GPU_I_ID) weighs its
   profile's compute slices of the GPU; when a scrape has MIG instances of a GPU, that GPU's own
   row carries its energy and weight 0. Utilisation falls back to the profiling metric
   DCGM_FI_PROF_GR_ENGINE_ACTIVE (MIG instances report no DCGM_FI_DEV_GPU_UTIL). #}
with source as (
    {{ first_delivery(source('raw', 'dcgm_samples'),
                      in_sample_window('ts') ~ ' and ' ~ in_gpu_slice('gpu_uuid'),
                      ['host', 'gpu_uuid', 'gpu_instance_id', 'ts']) }}
),

flagged as (
    select
        source.*,
        max(case when gpu_instance_id is not null then 1 else 0 end)
            over (partition by host, gpu_uuid, ts) as has_mig_instances
    from source
)

select
    'dcgm' as telemetry_source,
    ts,
    host,
    cast(null as varchar) as resource_id,
    gpu_index,
    gpu_uuid,
    gpu_uuid || coalesce('/' || gpu_instance_id, '') as device_uuid,
    case
        when gpu_instance_id is not null then cast(mig_slices as double) / mig_total_slices
        when has_mig_instances = 1 then 0.0
        else 1.0
    end as weight,
    model_name as gpu_name,
    coalesce(util_gpu_pct, gr_engine_active * 100) as util_gpu_pct,
    cast(fb_used_mib * 1048576 as bigint) as mem_used_bytes,
    cast((fb_used_mib + fb_free_mib) * 1048576 as bigint) as mem_total_bytes,
    power_usage_w as power_w,
    cast(total_energy_mj as bigint) as energy_mj,
    pod,
    namespace,
    container
from flagged
