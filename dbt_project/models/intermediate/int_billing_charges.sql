{# Every provider's charges in one FOCUS shape, classified: is it GPU compute (rule 2), and which
   team does its resource's tag name (rule 6; the first configured tag key present wins)? On-prem
   servers' own charges say their GPUs and team themselves.
   Incremental by billing partition (macros/billing_partitions.sql): the pre-hook deletes the
   partitions that changed, and the build adds them again from staging. #}
{{ config(materialized='incremental', incremental_strategy='append', on_schema_change='sync_all_columns',
          pre_hook="{{ delete_changed_billing_partitions() }}") }}

{# The configured team tag keys, in priority order, read when the model runs: a coalesce over a
   handful of keys per row is far cheaper than joining every charge to every key. (The source, not
   the ephemeral staging model, which only exists inlined in a model's own SQL.) #}
{% set tag_keys_query %}
    select tag_key from {{ source('config', 'team_tag_keys') }} order by priority
{% endset %}
{% set team_tag_keys = run_query(tag_keys_query).columns[0].values() if execute else [] %}

{% set changed = changed_billing_partitions() %}

with charges as (
    {% for model in billing_models() %}
    select
        {{ focus_charge_columns() | join(', ') }},
        x_ingested_at,
        cast(null as varchar) as x_gpu_model,
        cast(null as integer) as x_gpu_count,
        cast(null as varchar) as x_team
    from {{ ref(model) }}
    where {{ in_changed_billing_periods(model, changed) }}
    union all
    {% endfor %}
    select
        {{ focus_charge_columns() | join(', ') }},
        cast(null as timestamp) as x_ingested_at,
        gpu_model,
        gpu_count,
        team_tag
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
        {{ json_value('charges.tags', sql_string(key)) }}{{ ',' if not loop.last }}
        {%- endfor %}
    )
    {%- else -%}
    charges.x_team
    {%- endif %} as team_tag,
    charges.x_ingested_at,
    {{ this_build() }} as x_built_at
from charges
left join gpu_instance_types
    on charges.provider_name = gpu_instance_types.provider
    and charges.x_instance_type = gpu_instance_types.instance_type
