{# Which deployment served each request group (int_request_groups), and with what weight (rule 4). A request the log routes
   is its deployment's. Any other is pooled over the deployments of its model that held GPUs in
   its hour, in proportion to the GPU-hours each held then: splitting every request that way
   splits the pool's cost over teams exactly as one pooled deployment would. With none holding
   GPUs it is split evenly over the model's deployments (at zero cost), and a model no deployment
   serves keeps its request with no deployment. A request's weight is what it made the GPU work:
   uncached input, cached input and output tokens at the deployment-day's weights (measured from
   vLLM where int_deployment_token_weights has them, else configured); a proxy cache hit made it
   do nothing and weighs 0. Token and request counts
   sit on one deployment per request (the first by name) so they are never counted twice. #}
with requests as (
    select * from {{ ref('int_request_groups') }} where {{ in_day_window('hour_start') }}
),

workload_models as (
    select * from {{ ref('stg_config__workload_models') }}
),

held as (
    select workload, hour_start, sum(gpu_hours) as gpu_hours
    from {{ ref('int_gpu_hour_allocation') }}
    where holder_kind = 'inference' and {{ in_day_window('hour_start') }}
    group by workload, hour_start
),

measured_weights as (
    select * from {{ ref('int_deployment_token_weights') }}
),

settings as (
    select * from {{ ref('stg_config__settings') }}
),

candidates as (
    select
        requests.request_group,
        workload_models.workload,
        coalesce(held.gpu_hours, 0) as held_gpu_hours
    from requests
    inner join workload_models on requests.model = workload_models.model
    left join held
        on workload_models.workload = held.workload
        and requests.hour_start = held.hour_start
    where requests.routed_workload is null
),

pooled as (
    select
        request_group,
        workload,
        case
            when sum(held_gpu_hours) over by_request > 0
                then cast(held_gpu_hours as double) / cast(sum(held_gpu_hours) over by_request as double)
            else 1.0 / count(*) over by_request
        end as fraction,
        row_number() over (partition by request_group order by workload) = 1 as counts_tokens
    from candidates
    window by_request as (partition by request_group)
),

assigned as (
    select requests.*, pooled.workload, pooled.fraction, pooled.counts_tokens
    from requests
    inner join pooled on requests.request_group = pooled.request_group
    union all
    select requests.*, requests.routed_workload, 1.0, true
    from requests
    where requests.routed_workload is not null
        or not exists (select 1 from pooled where pooled.request_group = requests.request_group)
)

select
    assigned.request_group,
    assigned.hour_start,
    assigned.workload,
    assigned.team,
    assigned.model,
    assigned.fraction,
    assigned.counts_tokens,
    assigned.requests,
    assigned.is_cache_hit,
    assigned.input_tokens,
    assigned.cached_input_tokens,
    assigned.output_tokens,
    case when measured_weights.workload is null then 'configured' else 'measured' end as weight_method,
    {{ quantity('''assigned.fraction * (case when assigned.is_cache_hit then 0 else 1 end) * (
        (assigned.input_tokens - coalesce(assigned.cached_input_tokens, 0))
            * coalesce(measured_weights.weight_input, settings.token_weight_input)
        + coalesce(assigned.cached_input_tokens, 0)
            * coalesce(measured_weights.weight_cached_input, settings.token_weight_cached_input))''') }}
        as input_weight,
    {{ quantity('''assigned.fraction * (case when assigned.is_cache_hit then 0 else 1 end) * assigned.output_tokens
        * coalesce(measured_weights.weight_output, settings.token_weight_output)''') }} as output_weight
from assigned
cross join settings
left join measured_weights
    on assigned.workload = measured_weights.workload
    and cast(assigned.hour_start as date) = measured_weights.day
