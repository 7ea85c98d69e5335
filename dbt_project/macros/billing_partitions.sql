{# int_billing_charges is incremental by billing partition: a source format's billing period
   ('aws-cur', '2026-11'). A partition is rebuilt when its staging rows differ from what the table
   holds in count or newest ingestion time (a restated delivery replaces its rows with newer ones,
   a file loaded again likewise), or when it is gone from staging. On-prem charges, derived from the
   asset register and the telemetry hours, are rebuilt on every build (a few rows per server and
   hour). The rest stays: a daily run reads a month's bill once, not every day. #}

{% macro billing_models() %}
    {{ return(['stg_aws__cur', 'stg_gcp__billing_export', 'stg_azure__cost_details', 'stg_oci__cost_report',
               'stg_focus__charges']) }}
{% endmacro %}

{% macro onprem_source_format() %}'gpuledger on-prem register'{% endmacro %}

{# A value rendered into the SQL as a string literal. #}
{% macro sql_string(value) %}'{{ value | replace("'", "''") }}'{% endmacro %}

{# [(source format, billing period, staging model or none when it is gone)] to rebuild; none on a
   full build. Read when the model runs (both the model and its pre-hook ask, before either writes),
   so the model's filters are literals that DuckDB pushes down to the raw scans. #}
{% macro changed_billing_partitions() %}
    {% if not (execute and is_incremental()) %}
        {{ return(none) }}
    {% endif %}
    {% set query %}
        with staged as (
            {% for model in billing_models() %}
            select '{{ model }}' as model, x_source_format, coalesce(billing_period, '') as period,
                   count(*) as charges, max(x_ingested_at) as ingested_at
            from {{ ref(model) }}
            group by x_source_format, coalesce(billing_period, '')
            {% if not loop.last %}union all{% endif %}
            {% endfor %}
        ),

        built as (
            select x_source_format, coalesce(billing_period, '') as period,
                   count(*) as charges, max(x_ingested_at) as ingested_at
            from {{ this }}
            where x_source_format <> {{ onprem_source_format() }}
            group by x_source_format, coalesce(billing_period, '')
        )

        select coalesce(built.x_source_format, staged.x_source_format), coalesce(built.period, staged.period),
               staged.model
        from built
        full outer join staged
            on built.x_source_format = staged.x_source_format and built.period = staged.period
        where built.charges is distinct from staged.charges or built.ingested_at is distinct from staged.ingested_at
        order by 1, 2
    {% endset %}
    {{ return(run_query(query).rows) }}
{% endmacro %}

{# The model's filter on one staging model's rows: its changed periods ('true' on a full build). #}
{% macro in_changed_billing_periods(model, changed) -%}
    {%- if changed is none -%}
    true
    {%- else -%}
    {%- set periods = changed | selectattr(2, 'equalto', model) | map(attribute=1) | list -%}
    {%- if periods -%}
    coalesce(billing_period, '') in ({% for p in periods %}{{ sql_string(p) }}{{ ', ' if not loop.last }}{% endfor %})
    {%- else -%}
    false
    {%- endif -%}
    {%- endif -%}
{%- endmacro %}

{% macro delete_changed_billing_partitions() -%}
    {%- if is_incremental() -%}
    delete from {{ this }}
    where x_source_format = {{ onprem_source_format() }}
        {%- for format, period, _ in changed_billing_partitions() %}
        or (x_source_format = {{ sql_string(format) }} and coalesce(billing_period, '') = {{ sql_string(period) }})
        {%- endfor %}
    {%- endif -%}
{%- endmacro %}
