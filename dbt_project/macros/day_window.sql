{# The UTC days a run builds. Dagster passes `day_start` and `day_end` (exclusive) for a daily
   partition or a range of them; without them (a plain `dbt build`) a model covers all history.
   Day-partitioned models (models/intermediate/daily) delete their window and insert it again,
   so a late file for an old day rebuilds that day and nothing else. #}
{% macro in_day_window(column, lookback_seconds=0, lookahead_seconds=0) -%}
    {%- if var('day_start', none) is none -%}
    true
    {%- else -%}
    {{ column }} >= cast('{{ var("day_start") }}' as timestamp) - interval '{{ lookback_seconds }} seconds'
        and {{ column }} < cast('{{ var("day_end") }}' as timestamp) + interval '{{ lookahead_seconds }} seconds'
    {%- endif -%}
{%- endmacro %}

{% macro delete_day_window(column='hour_start') -%}
    {%- if is_incremental() -%}
    delete from {{ this }} where {{ in_day_window(column) }}
    {%- endif -%}
{%- endmacro %}
