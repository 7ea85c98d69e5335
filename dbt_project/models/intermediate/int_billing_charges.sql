{# Every provider's charges in one FOCUS shape, classified: is it GPU compute (rule 2), and
   which team does its resource's tag name (rule 6)? #}
with charges as (
    select * from {{ ref('stg_aws__cur') }}
),

gpu_instance_types as (
    select * from {{ ref('gpu_instance_types') }}
),

settings as (
    select * from {{ ref('stg_config__settings') }}
)

select
    charges.*,
    gpu_instance_types.gpu_model,
    gpu_instance_types.gpu_count,
    gpu_instance_types.gpu_count is not null and charges.charge_category = 'Usage' as is_gpu_compute,
    {{ json_value('charges.tags', 'settings.team_tag') }} as team_tag
from charges
cross join settings
left join gpu_instance_types
    on charges.provider_name = gpu_instance_types.provider
    and charges.x_instance_type = gpu_instance_types.instance_type
