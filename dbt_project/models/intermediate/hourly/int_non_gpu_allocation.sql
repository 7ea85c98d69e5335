{# Rule 6: non-GPU charges (storage, network, fees, support, tax, credits) hour by hour. A
   charge whose resource carries the team tag is that team's direct cost. The rest is the shared
   pool: each hour's piece is spread over the teams (and their models and workloads) in
   proportion to their GPU cost that day, or left unallocated when the policy says so or the day
   has no team GPU cost. The pool is summed per hour and account before the spread: spreading
   each untagged resource on its own made charges x workloads rows, 20 M a day at 4,000 GPUs,
   for figures nobody reads by resource (focus_cost_and_usage keeps the resources). #}
with non_gpu as (
    select * from {{ ref('int_charge_hours') }}
    where not is_gpu_compute and {{ in_day_window('hour_start') }}
),

settings as (
    select * from {{ ref('stg_config__settings') }}
),

gpu_cost_by_day as (
    select
        cast(hour_start as date) as day,
        team,
        model,
        workload,
        sum(effective_cost) as gpu_cost
    from {{ ref('int_gpu_ledger') }}
    where team <> '{{ var("unallocated_team") }}' and {{ in_day_window('hour_start') }}
    group by cast(hour_start as date), team, model, workload
    having sum(effective_cost) > 0
),

day_weights as (
    select
        gpu_cost_by_day.*,
        cast(gpu_cost as double) / cast(sum(gpu_cost) over (partition by day) as double) as weight
    from gpu_cost_by_day
    cross join settings
    where settings.shared_cost_policy = 'proportional'
),

direct as (
    select
        hour_start, billing_period, provider_name, billing_account_id, billing_currency, resource_id,
        team_tag as team,
        cast(null as varchar) as model,
        cast(null as varchar) as workload,
        'direct' as category,
        effective_cost,
        billed_cost,
        list_cost
    from non_gpu
    where team_tag is not null
),

shared_pool as (
    select
        hour_start, billing_period, provider_name, billing_account_id, billing_currency,
        sum(effective_cost) as effective_cost,
        sum(billed_cost) as billed_cost,
        sum(list_cost) as list_cost
    from non_gpu
    where team_tag is null
    group by hour_start, billing_period, provider_name, billing_account_id, billing_currency
),

shared_spread as (
    select
        shared_pool.hour_start, shared_pool.billing_period, shared_pool.provider_name,
        shared_pool.billing_account_id, shared_pool.billing_currency,
        cast(null as varchar) as resource_id,
        coalesce(day_weights.team, '{{ var("unallocated_team") }}') as team,
        day_weights.model,
        day_weights.workload,
        'shared' as category,
        {{ allocate('shared_pool.effective_cost', 'coalesce(day_weights.weight, 1.0)') }} as effective_cost,
        {{ allocate('shared_pool.billed_cost', 'coalesce(day_weights.weight, 1.0)') }} as billed_cost,
        {{ allocate('shared_pool.list_cost', 'coalesce(day_weights.weight, 1.0)') }} as list_cost
    from shared_pool
    left join day_weights on cast(shared_pool.hour_start as date) = day_weights.day
)

select * from direct
union all
select * from shared_spread
