{# Token weights measured per deployment and day from vLLM's own timing (rule 4): the GPU-seconds
   a prompt token costs (prefill time / uncached prompt tokens) against what an output token
   costs (decode time / generated tokens). Counters are differenced between consecutive scrapes
   (a restart resets them: the new value is the rise) and the rises summed by the later scrape's
   day. The input weight stays the configured one and the output weight becomes input x the
   measured ratio; the cached-input weight stays configured, since vLLM does not time cache hits
   apart. Days without all four rises fall back to the configured weights (int_request_deployments). #}
with metrics as (
    select * from {{ ref('stg_serving_engines__vllm_metrics') }}
),

settings as (
    select * from {{ ref('stg_config__settings') }}
),

rises as (
    select
        deployment,
        cast(ts as date) as day,
        metric,
        case
            when lag(value) over series is null then 0
            when value >= lag(value) over series then value - lag(value) over series
            else value
        end as rise
    from metrics
    window series as (partition by deployment, model_name, metric order by ts)
),

daily as (
    select
        deployment,
        day,
        sum(case when metric = 'request_prefill_time_seconds_sum' then rise else 0 end) as prefill_seconds,
        sum(case when metric = 'request_decode_time_seconds_sum' then rise else 0 end) as decode_seconds,
        sum(case when metric = 'prompt_tokens_total' then rise else 0 end) as prompt_tokens,
        sum(case when metric = 'prefix_cache_hits_total' then rise else 0 end) as cached_prompt_tokens,
        sum(case when metric = 'generation_tokens_total' then rise else 0 end) as generation_tokens
    from rises
    group by deployment, day
)

select
    daily.deployment as workload,
    daily.day,
    daily.prefill_seconds,
    daily.decode_seconds,
    daily.prompt_tokens,
    daily.cached_prompt_tokens,
    daily.generation_tokens,
    settings.token_weight_input as weight_input,
    settings.token_weight_cached_input as weight_cached_input,
    settings.token_weight_input
        * (daily.decode_seconds / daily.generation_tokens)
        / (daily.prefill_seconds / (daily.prompt_tokens - daily.cached_prompt_tokens)) as weight_output
from daily
cross join settings
where daily.prefill_seconds > 0
    and daily.decode_seconds > 0
    and daily.generation_tokens > 0
    and daily.prompt_tokens > daily.cached_prompt_tokens
