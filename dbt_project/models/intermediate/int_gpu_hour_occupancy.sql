{# Rule 3: for each GPU-hour with telemetry, which workloads held the GPU and for what share of
   the hour's samples. A sample with k workloads on it gives each 1/k (time-slicing); a sample
   with no process is idle. Energy is the NVML counter's rise since the previous sample, charged
   to the later sample's holders; a rise across a gap of over a minute (collector down, counter
   reset) is unknown and left out. #}
{% set energy_kwh %}
    sum(
        case
            when holders.since_previous <= interval '60 seconds' and holders.energy_delta_mj >= 0
                then holders.share * holders.energy_delta_mj
            else 0
        end
    ) / 3600000000
{% endset %}

with samples as (
    select * from {{ ref('stg_nvml__gpu_samples') }}
),

processes as (
    select * from {{ ref('stg_nvml__processes') }}
),

process_workloads as (
    select * from {{ ref('stg_config__process_workloads') }}
),

hosts as (
    select * from {{ ref('stg_config__hosts') }}
),

sample_energy as (
    select
        samples.*,
        total_energy_mj - lag(total_energy_mj) over by_gpu as energy_delta_mj,
        ts - lag(ts) over by_gpu as since_previous
    from samples
    window by_gpu as (partition by gpu_uuid order by ts)
),

sample_workloads as (
    select distinct
        processes.ts,
        processes.gpu_uuid,
        coalesce(process_workloads.workload, 'unmatched') as workload
    from processes
    left join process_workloads
        on processes.host = process_workloads.host
        and coalesce(processes.process_name, '') = coalesce(process_workloads.process_name, '')
        and coalesce(processes.container_id, '') = coalesce(process_workloads.container_id, '')
        and coalesce(processes.pod_uid, '') = coalesce(process_workloads.pod_uid, '')
        and coalesce(processes.env, '') = coalesce(process_workloads.env, '')
),

holders as (
    select
        sample_energy.*,
        sample_workloads.workload,
        {{ quantity('1.0 / count(*) over (partition by sample_energy.gpu_uuid, sample_energy.ts)') }} as share
    from sample_energy
    left join sample_workloads
        on sample_energy.gpu_uuid = sample_workloads.gpu_uuid
        and sample_energy.ts = sample_workloads.ts
)

select
    coalesce(holders.resource_id, hosts.resource_id) as resource_id,
    holders.gpu_index,
    date_trunc('hour', holders.ts) as hour_start,
    holders.workload,
    any_value(holders.host) as host,
    any_value(holders.gpu_uuid) as gpu_uuid,
    sum(holders.share) as held_samples,
    {{ quantity(energy_kwh) }} as energy_kwh,
    {{ quantity('sum(holders.share * cast(holders.util_gpu_pct as decimal(9, 3))) / 100') }} as busy_samples
from holders
left join hosts on holders.host = hosts.host
group by 1, 2, 3, 4
