{# Every provider's charges in one FOCUS shape, classified: is it GPU compute (rule 2), and which
   team does its resource's tag name (rule 6; the first configured tag key present wins)? #}
{% set billing_models = ['stg_aws__cur', 'stg_gcp__billing_export', 'stg_azure__cost_details',
                         'stg_oci__cost_report', 'stg_focus__charges'] %}

with charges as (
    {% for model in billing_models %}
    select {{ focus_charge_columns() | join(', ') }} from {{ ref(model) }}
    {% if not loop.last %}union all{% endif %}
    {% endfor %}
),

gpu_instance_types as (
    select * from {{ ref('gpu_instance_types') }}
),

tag_keys as (
    select * from {{ ref('stg_config__team_tag_keys') }}
),

team_tags as (
    select
        charges.charge_id,
        {{ json_value('charges.tags', 'tag_keys.tag_key') }} as team_tag,
        row_number() over (partition by charges.charge_id order by tag_keys.priority) as tag_rank
    from charges
    inner join tag_keys on {{ json_value('charges.tags', 'tag_keys.tag_key') }} is not null
)

select
    {% for column in focus_charge_columns() %}
    {% if column == 'service_subcategory' -%}
    {# FOCUS recommends a subcategory; sources without one get their category's "Other (...)" #}
    coalesce(charges.service_subcategory, 'Other (' || charges.service_category || ')') as service_subcategory,
    {%- else -%}
    charges.{{ column }},
    {%- endif %}
    {% endfor %}
    gpu_instance_types.gpu_model,
    gpu_instance_types.gpu_count,
    gpu_instance_types.gpu_count is not null and charges.charge_category = 'Usage' as is_gpu_compute,
    team_tags.team_tag
from charges
left join gpu_instance_types
    on charges.provider_name = gpu_instance_types.provider
    and charges.x_instance_type = gpu_instance_types.instance_type
left join team_tags on charges.charge_id = team_tags.charge_id and team_tags.tag_rank = 1
