{# Every served request once, whichever log saw it. The same request id in several logs (a
   gateway in front of LiteLLM in front of vLLM) counts once, from the log that knows most: the
   gateway, then LiteLLM (both carry usage and the caller), then the engine's own log. A request
   that only an engine logged belongs to that deployment and its first model, with no caller.
   Built by day: the day's requests are judged with the hour either side (macros/serving.sql). #}
with gateway as (
    select * from {{ ref('stg_gateway__requests') }}
),

litellm as (
    select * from {{ ref('stg_litellm__spend_logs') }}
),

engines as (
    select * from {{ ref('stg_serving_engines__requests') }}
),

first_models as (
    select workload, min(model) as model
    from {{ ref('stg_config__workload_models') }}
    group by workload
),

all_requests as (
    select
        request_id, 1 as source_rank, 'gateway' as log_source, ts, hour_start, model, deployment, api_base,
        api_key_hash, api_key_alias, cast(null as varchar) as litellm_team_id, user_id, metadata, is_failed,
        false as is_cache_hit, input_tokens, output_tokens, cached_input_tokens
    from gateway
    union all
    select
        request_id, 2, 'litellm', ts, hour_start, model, cast(null as varchar), api_base,
        api_key_hash, api_key_alias, litellm_team_id, user_id, metadata, is_failed,
        is_cache_hit, input_tokens, output_tokens, cached_input_tokens
    from litellm
    union all
    select
        engines.request_id, 3, engines.engine, engines.ts, engines.hour_start,
        coalesce(first_models.model, engines.deployment), engines.deployment, cast(null as varchar),
        cast(null as varchar), cast(null as varchar), cast(null as varchar), cast(null as varchar),
        cast(null as varchar), engines.is_failed, false, 0, engines.output_tokens, cast(null as bigint)
    from engines
    left join first_models on engines.deployment = first_models.workload
),

once as (
    select *
    from all_requests
    qualify row_number() over (partition by request_id order by source_rank) = 1
)

select * from once where {{ in_day_window('ts') }}
