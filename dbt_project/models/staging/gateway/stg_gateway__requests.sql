{# One row per request: a retry that reuses a request id, or a line the log shipper delivered
   twice, counts once, as its latest attempt. #}
{{ config(materialized='ephemeral') }}  {# inlined into int_requests, which builds by day #}

with source as (
    select * from {{ source('raw', 'gateway_requests') }} where {{ request_window() }}
),

latest_attempt as (
    {{ latest_attempt('source') }}
)

select
    request_id,
    ts,
    date_trunc('hour', ts) as hour_start,
    endpoint,
    deployment,
    api_base,
    model,
    api_key_hash,
    api_key_alias,
    user_id,
    metadata,
    status,
    coalesce(status >= 400, false) as is_failed,
    stream,
    latency_ms,
    coalesce(prompt_tokens, 0) as input_tokens,
    coalesce(completion_tokens, 0) as output_tokens,
    cached_tokens as cached_input_tokens,
    _source_file
from latest_attempt
