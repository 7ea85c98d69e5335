{# Requests as the serving engines logged them, for deployments without a gateway or LiteLLM
   log. vLLM logs no token counts; TGI's output tokens are estimated from its timings; neither
   knows the caller. A request logged twice counts once; TGI logs no id, so each line is one. #}
{{ config(materialized='ephemeral') }}  {# inlined into int_requests, which builds by day #}

with source as (
    select
        *,
        coalesce(request_id, deployment || ':' || _source_file || ':' || cast(line_number as varchar)) as request_key
    from {{ source('raw', 'engine_requests') }}
    where {{ request_window() }}
),

latest_attempt as (
    {{ latest_attempt('source', 'request_key') }}
)

select
    request_key as request_id,
    ts,
    date_trunc('hour', ts) as hour_start,
    deployment,
    engine,
    coalesce(status, 'success') <> 'success' as is_failed,
    coalesce(output_tokens, 0) as output_tokens,
    _source_file
from latest_attempt
