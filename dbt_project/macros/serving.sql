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
