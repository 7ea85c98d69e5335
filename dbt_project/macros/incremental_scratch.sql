{# dbt-duckdb builds an incremental model's new rows into a DuckDB temporary table and never drops
   it: it stays in memory until dbt's session ends. A day's daily models are tens of millions of
   rows, so by the third model a 1,000-GPU day ran out of memory_limit. This takes the branch
   dbt-duckdb uses for MotherDuck: a plain table in a scratch schema, which it drops as soon as
   the model's rows are inserted (and which can spill to disk). #}
{% macro duckdb__dispatch_temporary_relation(target_relation, batch_id='') %}
    {% set relation = target_relation.incorporate(path=adapter.get_temp_relation_path(target_relation, batch_id)) %}
    {% do run_query(create_schema(relation)) %}
    {% if not adapter.disable_transactions() %}
        {% do adapter.commit() %}
    {% endif %}
    {% do return({'relation': relation, 'temporary': false}) %}
{% endmacro %}
