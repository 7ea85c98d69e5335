{# vLLM /metrics counters per scrape, summed over data-parallel engines (the `engine` label),
   per deployment (the scrape's folder) and model. #}
select
    ts,
    deployment,
    model_name,
    metric,
    sum(value) as value
from {{ source('raw', 'vllm_metrics') }}
where metric in (
    'prompt_tokens_total', 'generation_tokens_total', 'prefix_cache_hits_total',
    'request_prefill_time_seconds_sum', 'request_decode_time_seconds_sum'
)
group by ts, deployment, model_name, metric
