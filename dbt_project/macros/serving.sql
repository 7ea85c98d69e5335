{# A day's requests and the hour either side: a retry, or a request two logs saw, a few minutes
   across midnight is judged with all its attempts, so it counts on one day only. #}
{% macro request_window(column='ts') -%}
    {{ in_day_window(column, lookback_seconds=3600, lookahead_seconds=3600) }}
{%- endmacro %}

{# Each request once, as its latest attempt: a retry that reuses a request id, or a line a log
   shipper delivered twice, counts once. #}
{% macro latest_attempt(relation, request_key='request_id') -%}
    select *
    from {{ relation }}
    qualify row_number() over (
        partition by {{ request_key }}
        order by ts desc, _source_file desc, line_number desc
    ) = 1
{%- endmacro %}
