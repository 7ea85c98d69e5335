{# The rows of a raw telemetry table that match `where`, one per key: a sample delivered twice
   (one file shipped under two names) counts once, from the first file by name. Only the repeated
   keys are sorted. A window over every row (`qualify row_number() ...` on the whole day) held the
   day's rows, every column, in memory: at 10,000 GPUs (72 M process rows) it ran out of
   memory_limit, where grouping the keys alone spills to disk, and it took 5x as long. The keys
   are grouped by their hash, one integer, rather than by their columns (0.8 s -> 0.6 s over a
   1,000-GPU day's samples): a hash two keys share sends both to the exact window, which keeps
   each, so the rows are the same. The rows are read three times rather than through a CTE, which
   DuckDB would materialise whole. #}
{% macro first_delivery(table, where, keys) -%}
    {%- set rows = '(select * from ' ~ table ~ ' where ' ~ where ~ ')' -%}
    {%- set row_keys = [] -%}
    {%- for key in keys %}{% do row_keys.append('rows_.' ~ key) %}{% endfor -%}
    with repeated as (
        select {{ key_hash(keys) }} as key_hash
        from {{ rows }} as keyed
        group by key_hash
        having count(*) > 1
    )

    select rows_.*
    from {{ rows }} as rows_
    left join repeated on {{ key_hash(row_keys) }} = repeated.key_hash
    where repeated.key_hash is null
    union all
    select *
    from (
        select rows_.*
        from {{ rows }} as rows_
        inner join repeated on {{ key_hash(row_keys) }} = repeated.key_hash
        qualify row_number() over (
            partition by {{ row_keys | join(', ') }}
            order by rows_._source_file
        ) = 1
    ) as first_rows
{%- endmacro %}
