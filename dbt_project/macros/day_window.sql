{# The UTC days a run builds. Dagster sets GPULEDGER_DAY_START and GPULEDGER_DAY_END (exclusive,
   'YYYY-MM-DD HH:MM:SS') for a daily partition or a range of them; without them (a plain
   `dbt build`) a model covers all history. Environment variables, not --vars: changed --vars make
   dbt re-parse the whole project on every run. They are read only when dbt executes: a file that
   reads an environment variable while dbt parses it is parsed again whenever the value changes,
   which a new day's build did for 24 files (0.8 s of every daily run).
   Day-partitioned models (models/intermediate/daily) delete their window and insert it again,
   so a late file for an old day rebuilds that day and nothing else. The hourly ledger models
   (models/intermediate/hourly, cost_ledger_hourly) do the same over the ledger's window: the days
   the daily builds rebuilt and the billing periods reloaded since the ledger's last build. #}
{% macro day_start() -%}
    {{ return(env_var('GPULEDGER_DAY_START', '') if execute else '') }}
{%- endmacro %}

{% macro in_day_window(column, lookback_seconds=0, lookahead_seconds=0) -%}
    {%- set start = day_start() -%}
    {%- if start == '' -%}
    true
    {%- else -%}
    {{ column }} >= cast('{{ start }}' as timestamp) - interval '{{ lookback_seconds }} seconds'
        and {{ column }} < cast('{{ env_var("GPULEDGER_DAY_END") }}' as timestamp) + interval '{{ lookahead_seconds }} seconds'
    {%- endif -%}
{%- endmacro %}

{# The window and the minute before it: a day's first telemetry sample measures its energy from
   the day before's last (int_gpu_timestamps), at most a minute back. #}
{% macro in_sample_window(column) -%}
    {{ in_day_window(column, lookback_seconds=60) }}
{%- endmacro %}

{# Whether a span [start, end) has an hour in the window (hours_of gives a span at least its first
   hour): a superset test, for reading only what a window's hours can come from. #}
{% macro overlaps_day_window(start_column, end_column) -%}
    {%- if day_start() == '' -%}
    true
    {%- else -%}
    {{ start_column }} < cast('{{ env_var("GPULEDGER_DAY_END") }}' as timestamp)
        and greatest({{ end_column }}, {{ start_column }} + interval 1 hour) > cast('{{ env_var("GPULEDGER_DAY_START") }}' as timestamp)
    {%- endif -%}
{%- endmacro %}

{# A day with more raw rows than one build may read (gpuledger.yaml's daily_build_rows) is built a
   slice of its GPUs at a time: GPULEDGER_GPU_SLICE 'k/n' keeps the physical GPUs whose uuid falls
   in bucket k of n. Every GPU model works within one physical GPU (its samples, MIG instances,
   holders, hours), so the slices together are the day, and each needs the memory of 1/n of it.
   Unset, every GPU. Read only when dbt executes, like the day window. #}
{% macro gpu_slice() -%}
    {{ return(env_var('GPULEDGER_GPU_SLICE', '') if execute else '') }}
{%- endmacro %}

{% macro in_gpu_slice(gpu_uuid_column) -%}
    {%- set slice = gpu_slice() -%}
    {%- if slice == '' -%}
    true
    {%- else -%}
    {%- set bucket, buckets = slice.split('/') -%}
    {{ hash_bucket(gpu_uuid_column, buckets | int) }} = {{ bucket | int }}
    {%- endif -%}
{%- endmacro %}

{# The window's rows go, and of a GPU model (config gpu_sliced) only the slice's GPUs' rows. #}
{% macro delete_day_window(column='hour_start') -%}
    {%- if is_incremental() -%}
    delete from {{ this }} where {{ in_day_window(column) }}
    {%- if config.get('gpu_sliced') %} and {{ in_gpu_slice('gpu_uuid') }}{% endif -%}
    {%- endif -%}
{%- endmacro %}
