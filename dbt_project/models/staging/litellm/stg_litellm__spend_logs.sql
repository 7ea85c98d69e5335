{# One row per LiteLLM request: a retry that reuses a request id, or a row exported twice,
   counts once, as its latest attempt. LiteLLM's `spend` is its API-price estimate, kept only for
   a "vs API" comparison: our cost comes from the GPUs. #}
{{ config(materialized='ephemeral') }}  {# inlined into int_requests, which builds by day #}

with source as (
    select * from {{ source('raw', 'litellm_spend_logs') }} where {{ request_window() }}
),

latest_attempt as (
    {{ latest_attempt('source') }}
)

select
    request_id,
    ts,
    date_trunc('hour', ts) as hour_start,
    model,
    model_group,
    api_base,
    api_key_hash,
    key_alias as api_key_alias,
    team_id as litellm_team_id,
    user_id,
    metadata,
    coalesce(lower(status) = 'failure', false) as is_failed,
    coalesce(cache_hit, false) as is_cache_hit,
    coalesce(prompt_tokens, 0) as input_tokens,
    coalesce(completion_tokens, 0) as output_tokens,
    cached_tokens as cached_input_tokens,
    spend as litellm_spend,
    _source_file
from latest_attempt
