{# Every provider's charges in one FOCUS shape, classified: is it GPU compute (rule 2), and which
   team does its resource's tag name (rule 6; the first configured tag key present wins)? On-prem
   servers' own charges say their GPUs and team themselves. #}
{% set billing_models = ['stg_aws__cur', 'stg_gcp__billing_export', 'stg_azure__cost_details',
                         'stg_oci__cost_report', 'stg_focus__charges'] %}

{# The configured team tag keys, in priority order, read when the model runs: a coalesce over a
   handful of keys per row is far cheaper than joining every charge to every key. (The source, not
   the ephemeral staging model, which only exists inlined in a model's own SQL.) #}
{% set tag_keys_query %}
    select tag_key from {{ source('config', 'team_tag_keys') }} order by priority
{% endset %}
{% set team_tag_keys = run_query(tag_keys_query).columns[0].values() if execute else [] %}

with charges as (
    {% for model in billing_models %}
    select
        {{ focus_charge_columns() | join(', ') }},
        cast(null as varchar) as x_gpu_model,
        cast(null as integer) as x_gpu_count,
        cast(null as varchar) as x_team
    from {{ ref(model) }}
    union all
    {% endfor %}
    select {{ focus_charge_columns() | join(', ') }}, gpu_model, gpu_count, team_tag
    from {{ ref('int_onprem_charges') }}
),

gpu_instance_types as (
    select * from {{ ref('gpu_instance_types') }}
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
    coalesce(charges.x_gpu_model, gpu_instance_types.gpu_model) as gpu_model,
    coalesce(charges.x_gpu_count, gpu_instance_types.gpu_count) as gpu_count,
    coalesce(charges.x_gpu_count, gpu_instance_types.gpu_count) is not null
        and charges.charge_category = 'Usage' as is_gpu_compute,
    {% if team_tag_keys -%}
    coalesce(
        charges.x_team,
        {%- for key in team_tag_keys %}
        {{ json_value('charges.tags', "'" ~ key | replace("'", "''") ~ "'") }}{{ ',' if not loop.last }}
        {%- endfor %}
    )
    {%- else -%}
    charges.x_team
    {%- endif %} as team_tag
from charges
left join gpu_instance_types
    on charges.provider_name = gpu_instance_types.provider
    and charges.x_instance_type = gpu_instance_types.instance_type
