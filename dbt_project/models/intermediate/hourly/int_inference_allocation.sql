{# Rule 4: the GPU cost a deployment held in an hour, split over the (team, model) pairs it
   served that hour by weighted tokens (by request count when every request failed), each request
   counted with its share of the deployment (int_request_deployments). An hour
   with no requests is idle_deployed, charged to the owner team and split evenly over the
   deployment's models. Requests served in an hour whose GPUs have no billed, monitored cost
   keep their tokens at zero cost, in the configured currency. Token counts sit on one resource row per deployment-hour
   so they are never counted twice when a deployment spans instances. #}
with held as (
    select
        hour_start,
        billing_period,
        provider_name,
        billing_account_id,
        billing_currency,
        resource_id,
        workload,
        sum(effective_cost) as effective_cost,
        sum(billed_cost) as billed_cost,
        sum(list_cost) as list_cost,
        sum(gpu_hours) as gpu_hours,
        sum(energy_kwh) as energy_kwh,
        sum(busy_gpu_hours) as busy_gpu_hours,
        row_number() over (partition by workload, hour_start order by resource_id, billing_period) as resource_rank
    from {{ ref('int_gpu_hour_allocation') }}
    where holder_kind = 'inference' and {{ in_day_window('hour_start') }}
    group by hour_start, billing_period, provider_name, billing_account_id, billing_currency, resource_id, workload
),

requests as (
    select * from {{ ref('int_request_deployments') }} where {{ in_day_window('hour_start') }}
),

workloads as (
    select * from {{ ref('stg_config__workloads') }}
),

workload_models as (
    select * from {{ ref('stg_config__workload_models') }}
),

settings as (
    select * from {{ ref('stg_config__settings') }}
),

served as (
    select
        workload,
        hour_start,
        team,
        model,
        sum(case when counts_tokens then requests else 0 end) as requests,
        sum(fraction * requests) as request_share,
        sum(case when counts_tokens then input_tokens else 0 end) as input_tokens,
        sum(case when counts_tokens then cached_input_tokens else 0 end) as cached_input_tokens,
        sum(case when counts_tokens then output_tokens else 0 end) as output_tokens,
        sum(input_weight + output_weight) as token_weight
    from requests
    group by workload, hour_start, team, model
),

served_shares as (
    select
        served.*,
        case
            when sum(token_weight) over deployment_hour > 0
                then cast(token_weight as double) / cast(sum(token_weight) over deployment_hour as double)
            else request_share / sum(request_share) over deployment_hour
        end as share
    from served
    window deployment_hour as (partition by workload, hour_start)
),

inference as (
    select
        coalesce(held.hour_start, served_shares.hour_start) as hour_start,
        held.billing_period,
        held.provider_name,
        held.billing_account_id,
        coalesce(held.billing_currency, settings.currency) as billing_currency,
        held.resource_id,
        served_shares.team,
        served_shares.model,
        served_shares.workload,
        'inference' as category,
        {{ allocate('coalesce(held.effective_cost, 0)', 'served_shares.share') }} as effective_cost,
        {{ allocate('coalesce(held.billed_cost, 0)', 'served_shares.share') }} as billed_cost,
        {{ allocate('coalesce(held.list_cost, 0)', 'served_shares.share') }} as list_cost,
        {{ quantity('coalesce(held.gpu_hours, 0) * served_shares.share') }} as gpu_hours,
        {{ quantity('coalesce(held.energy_kwh, 0) * served_shares.share') }} as energy_kwh,
        {{ quantity('coalesce(held.busy_gpu_hours, 0) * served_shares.share') }} as busy_gpu_hours,
        case when coalesce(held.resource_rank, 1) = 1 then served_shares.requests else 0 end as requests,
        case when coalesce(held.resource_rank, 1) = 1 then served_shares.input_tokens else 0 end as input_tokens,
        case when coalesce(held.resource_rank, 1) = 1 then served_shares.cached_input_tokens else 0 end
            as cached_input_tokens,
        case when coalesce(held.resource_rank, 1) = 1 then served_shares.output_tokens else 0 end as output_tokens
    from served_shares
    cross join settings
    left join held
        on served_shares.workload = held.workload
        and served_shares.hour_start = held.hour_start
),

idle_deployed as (
    select
        held.hour_start,
        held.billing_period,
        held.provider_name,
        held.billing_account_id,
        held.billing_currency,
        held.resource_id,
        workloads.owner_team as team,
        workload_models.model,
        held.workload,
        'idle_deployed' as category,
        {{ allocate('held.effective_cost', '1.0 / workloads.model_count') }} as effective_cost,
        {{ allocate('held.billed_cost', '1.0 / workloads.model_count') }} as billed_cost,
        {{ allocate('held.list_cost', '1.0 / workloads.model_count') }} as list_cost,
        {{ quantity('held.gpu_hours / workloads.model_count') }} as gpu_hours,
        {{ quantity('held.energy_kwh / workloads.model_count') }} as energy_kwh,
        {{ quantity('held.busy_gpu_hours / workloads.model_count') }} as busy_gpu_hours,
        0 as requests,
        0 as input_tokens,
        0 as cached_input_tokens,
        0 as output_tokens
    from held
    inner join workloads on held.workload = workloads.workload
    inner join workload_models on held.workload = workload_models.workload
    left join served_shares
        on held.workload = served_shares.workload
        and held.hour_start = served_shares.hour_start
    where served_shares.workload is null
)

select * from inference
union all
select * from idle_deployed
