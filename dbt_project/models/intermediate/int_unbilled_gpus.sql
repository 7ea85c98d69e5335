{# GPUs that telemetry sees but no bill charges for: on-prem GPUs not in the asset register yet,
   or hosts whose billing resource is unknown (add them to the config's `hosts`). Listed, never
   dropped: their energy and use are real even when their cost is not known. #}
with observed as (
    select * from {{ ref('int_gpu_hours_observed') }}
),

billed_resources as (
    select distinct resource_id from {{ ref('int_gpu_hour_cost') }}
)

select
    observed.resource_id,
    observed.host,
    observed.gpu_index,
    observed.gpu_uuid,
    min(observed.hour_start) as first_hour,
    max(observed.hour_start) as last_hour,
    count(*) as observed_hours,
    sum(observed.energy_kwh) as energy_kwh
from observed
left join billed_resources on observed.resource_id = billed_resources.resource_id
where billed_resources.resource_id is null
group by observed.resource_id, observed.host, observed.gpu_index, observed.gpu_uuid
