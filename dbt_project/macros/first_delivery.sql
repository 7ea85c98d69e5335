{# The rows of a raw telemetry table that match `where`, one per key: a sample delivered twice
   (one file shipped under two names) counts once, from the first file by name. Only the repeated
   keys are sorted. A window over every row (`qualify row_number() ...` on the whole day) held the
   day's rows, every column, in memory: at 10,000 GPUs (72 M process rows) it ran out of
   memory_limit, where grouping the keys alone spills to disk, and it took 5x as long. The rows
   are read three times rather than through a CTE, which DuckDB would materialise whole. #}
{% macro first_delivery(table, where, keys) -%}
    {%- set rows = '(select * from ' ~ table ~ ' where ' ~ where ~ ')' -%}
    {%- set matches -%}
        {%- for key in keys %}rows_.{{ key }} is not distinct from repeated.{{ key }}{{ ' and ' if not loop.last }}{% endfor -%}
    {%- endset -%}
    with repeated as (
        select {{ keys | join(', ') }}, true as is_repeated
        from {{ rows }} as keyed
        group by {{ keys | join(', ') }}
        having count(*) > 1
    )

    select rows_.*
    from {{ rows }} as rows_
    left join repeated on {{ matches }}
    where repeated.is_repeated is null
    union all
    select *
    from (
        select rows_.*
        from {{ rows }} as rows_
        inner join repeated on {{ matches }}
        qualify row_number() over (
            partition by {% for key in keys %}rows_.{{ key }}{{ ', ' if not loop.last }}{% endfor %}
            order by rows_._source_file
        ) = 1
    ) as first_rows
{%- endmacro %}
