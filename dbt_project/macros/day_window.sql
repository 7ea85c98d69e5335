{# The UTC days a run builds. Dagster sets GPULEDGER_DAY_START and GPULEDGER_DAY_END (exclusive,
   'YYYY-MM-DD HH:MM:SS') for a daily partition or a range of them; without them (a plain
   `dbt build`) a model covers all history. Environment variables, not --vars: changed --vars make
   dbt re-parse the whole project on every run.
   Day-partitioned models (models/intermediate/daily) delete their window and insert it again,
   so a late file for an old day rebuilds that day and nothing else. #}
{% macro in_day_window(column, lookback_seconds=0, lookahead_seconds=0) -%}
    {%- set day_start = env_var('GPULEDGER_DAY_START', '') -%}
    {%- if day_start == '' -%}
    true
    {%- else -%}
    {{ column }} >= cast('{{ day_start }}' as timestamp) - interval '{{ lookback_seconds }} seconds'
        and {{ column }} < cast('{{ env_var("GPULEDGER_DAY_END") }}' as timestamp) + interval '{{ lookahead_seconds }} seconds'
    {%- endif -%}
{%- endmacro %}

{% macro delete_day_window(column='hour_start') -%}
    {%- if is_incremental() -%}
    delete from {{ this }} where {{ in_day_window(column) }}
    {%- endif -%}
{%- endmacro %}
