{# SQL that differs between engines lives here, behind adapter.dispatch, so the models run on
   another dbt adapter by adding that adapter's implementation of these few macros. #}

{# One row per hour a charge touches: [start, end) truncated to hours, at least one. #}
{% macro hours_of(start_column, end_column) -%}
    {{ return(adapter.dispatch('hours_of', 'gpuledger')(start_column, end_column)) }}
{%- endmacro %}

{% macro default__hours_of(start_column, end_column) -%}
    unnest(range(
        date_trunc('hour', {{ start_column }}),
        greatest({{ end_column }}, date_trunc('hour', {{ start_column }}) + interval 1 hour),
        interval 1 hour
    ))
{%- endmacro %}

{# The value of key `key_expression` in a JSON object of tags, or null. #}
{% macro json_value(json_column, key_expression) -%}
    {{ return(adapter.dispatch('json_value', 'gpuledger')(json_column, key_expression)) }}
{%- endmacro %}

{% macro default__json_value(json_column, key_expression) -%}
    json_extract_string({{ json_column }}, '$."' || {{ key_expression }} || '"')
{%- endmacro %}

{# A MAP column (as in CUR Parquet) as a JSON object string, FOCUS's shape for Tags. #}
{% macro map_to_json(map_column) -%}
    {{ return(adapter.dispatch('map_to_json', 'gpuledger')(map_column)) }}
{%- endmacro %}

{% macro default__map_to_json(map_column) -%}
    case when cardinality({{ map_column }}) > 0 then cast(to_json({{ map_column }}) as varchar) end
{%- endmacro %}

{# A range of integers 0 .. n-1 as rows (a GPU instance's GPU indexes). #}
{% macro indexes_below(count_column) -%}
    {{ return(adapter.dispatch('indexes_below', 'gpuledger')(count_column)) }}
{%- endmacro %}

{% macro default__indexes_below(count_column) -%}
    unnest(range({{ count_column }}))
{%- endmacro %}

{# 'YYYY-MM' of a timestamp: the billing period key of the ledger and the reconciliation. #}
{% macro period_of(timestamp_column) -%}
    {{ return(adapter.dispatch('period_of', 'gpuledger')(timestamp_column)) }}
{%- endmacro %}

{% macro default__period_of(timestamp_column) -%}
    strftime({{ timestamp_column }}, '%Y-%m')
{%- endmacro %}

{# The first capture group of a regular expression, or null. #}
{% macro regexp_capture(text_column, pattern) -%}
    {{ return(adapter.dispatch('regexp_capture', 'gpuledger')(text_column, pattern)) }}
{%- endmacro %}

{% macro default__regexp_capture(text_column, pattern) -%}
    nullif(regexp_extract({{ text_column }}, '{{ pattern }}', 1), '')
{%- endmacro %}

{# Two JSON objects merged, keys of the second winning. #}
{% macro json_merge(first_json, second_json) -%}
    {{ return(adapter.dispatch('json_merge', 'gpuledger')(first_json, second_json)) }}
{%- endmacro %}

{% macro default__json_merge(first_json, second_json) -%}
    case
        when {{ first_json }} is null then {{ second_json }}
        when {{ second_json }} is null then {{ first_json }}
        else cast(json_merge_patch({{ first_json }}, {{ second_json }}) as varchar)
    end
{%- endmacro %}

{# Seconds from one timestamp to another, as a double. #}
{% macro seconds_between(start_column, end_column) -%}
    {{ return(adapter.dispatch('seconds_between', 'gpuledger')(start_column, end_column)) }}
{%- endmacro %}

{% macro default__seconds_between(start_column, end_column) -%}
    (epoch({{ end_column }}) - epoch({{ start_column }}))
{%- endmacro %}

{# A timestamp `months_column` calendar months later. #}
{% macro add_months(timestamp_column, months_column) -%}
    {{ return(adapter.dispatch('add_months', 'gpuledger')(timestamp_column, months_column)) }}
{%- endmacro %}

{% macro default__add_months(timestamp_column, months_column) -%}
    (cast({{ timestamp_column }} as timestamp) + interval 1 month * {{ months_column }})
{%- endmacro %}

{# Whether text matches a shell-style pattern (`*`, `?`), as the config's patterns are written. #}
{% macro glob_match(text_column, pattern_column) -%}
    {{ return(adapter.dispatch('glob_match', 'gpuledger')(text_column, pattern_column)) }}
{%- endmacro %}

{% macro default__glob_match(text_column, pattern_column) -%}
    ({{ text_column }} glob {{ pattern_column }})
{%- endmacro %}

{# Which of `buckets` buckets a value falls in, 0 .. buckets-1, the same for the same value. #}
{% macro hash_bucket(column, buckets) -%}
    {{ return(adapter.dispatch('hash_bucket', 'gpuledger')(column, buckets)) }}
{%- endmacro %}

{% macro default__hash_bucket(column, buckets) -%}
    hash({{ column }}) % {{ buckets }}
{%- endmacro %}

{# One integer for a key of several columns, the same for the same values (nulls included); two
   keys may share it. #}
{% macro key_hash(columns) -%}
    {{ return(adapter.dispatch('key_hash', 'gpuledger')(columns)) }}
{%- endmacro %}

{% macro default__key_hash(columns) -%}
    hash({{ columns | join(', ') }})
{%- endmacro %}
