{# The tests of an incremental model check the rows its build wrote, not all history: a daily run
   must cost what the new day costs (a unique test over every request ever logged, or every line of
   a year of CURs, grew each day's run with history). A test opts in with a `where` placeholder:
   - `__built_days__`: the build's day window (macros/day_window.sql) on hour_start, which the
     day- and hour-grain models delete and rebuild; every day on a plain `dbt build`;
   - `__built_partitions__`: the rows int_billing_charges wrote in this dbt invocation (the
     billing partitions it rebuilt and the on-prem charges; every row after a full build), which
     it stamps x_built_at = this_build().
   The keys such tests guard include the hour, or name the source file of one billing partition,
   or (request ids) are given one day by the model, so rows a build did not rewrite cannot break
   them. `dbt test` on its own reads every row. Any other `where` works as in dbt's own
   get_where_subquery, which this overrides. dbt wraps only a generic test's model in it: a
   singular test opts in by reading `get_where_subquery(ref(...))` (tests/unknown_gpu_instance_types.sql). #}
{% macro get_where_subquery(relation) -%}
    {%- set where = config.get('where', '') -%}
    {%- if where in ('__built_days__', '__built_partitions__') and flags.WHICH != 'build' -%}
        {%- set where = '' -%}
    {%- elif where == '__built_days__' -%}
        {%- set where = in_day_window('hour_start') -%}
    {%- elif where == '__built_partitions__' -%}
        {%- set where = 'x_built_at = ' ~ this_build() -%}
    {%- endif -%}
    {%- if where -%}
        {%- do return('(select * from ' ~ relation ~ ' where ' ~ where ~ ') dbt_subquery') -%}
    {%- else -%}
        {%- do return(relation) -%}
    {%- endif -%}
{%- endmacro %}

{# When this dbt invocation started: the same literal in a model and in its tests. #}
{% macro this_build() -%}
    cast('{{ run_started_at.strftime("%Y-%m-%d %H:%M:%S.%f") }}' as timestamp)
{%- endmacro %}
