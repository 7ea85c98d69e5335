{# What a kWh a GPU drew costs in carbon, per billed resource: the facility's PUE times the
   grid's intensity. Cloud GPUs use the configured cloud PUE and their billing region's intensity
   (the default where the region is not configured); on-prem servers their site's. #}
with gpu_resources as (
    select resource_id, provider_name, max(region_id) as region_id
    from {{ ref('int_billing_charges') }}
    where is_gpu_compute
    group by resource_id, provider_name
),

settings as (
    select * from {{ ref('stg_config__settings') }}
),

regions as (
    select * from {{ ref('stg_config__grid_regions') }}
),

assets as (
    select * from {{ ref('stg_config__on_prem_assets') }}
)

select
    gpu_resources.resource_id,
    gpu_resources.provider_name,
    gpu_resources.region_id,
    coalesce(assets.pue, settings.pue) as pue,
    coalesce(assets.grid_kg_co2e_per_kwh, regions.grid_kg_co2e_per_kwh, settings.grid_kg_co2e_per_kwh)
        as grid_kg_co2e_per_kwh
from gpu_resources
cross join settings
left join regions on gpu_resources.region_id = regions.region_id
left join assets
    on gpu_resources.provider_name = 'On-Premises'
    and gpu_resources.resource_id = assets.resource_id
