{# The daily series the spend detector watches, one row per day x scope x child: a scope's value
   is the sum over its children (the child rows say who drove an anomaly). Spend per team (children:
   category and workload), per provider and service (children: resources), per workload (children:
   teams), and fully-loaded cost per 1M tokens per model (children: teams; cost and tokens are
   summed, then divided). #}
with ledger as (
    select * from {{ ref('cost_ledger_hourly') }}
),

charges as (
    select * from {{ ref('int_charge_hours') }}
),

unit_economics as (
    select * from {{ ref('unit_economics_daily') }}
),

series as (
    select
        cast(hour_start as date) as day,
        'team' as scope_type,
        team as scope,
        'effective_cost' as metric,
        currency,
        category || coalesce(': ' || workload, '') as child,
        sum(effective_cost) as cost,
        cast(null as bigint) as tokens
    from ledger
    group by cast(hour_start as date), team, currency, category || coalesce(': ' || workload, '')

    union all

    select
        cast(hour_start as date),
        'provider_service',
        provider_name || ' / ' || coalesce(service_name, 'unknown service'),
        'effective_cost',
        billing_currency,
        coalesce(resource_id, '(no resource)'),
        sum(effective_cost),
        cast(null as bigint)
    from charges
    group by cast(hour_start as date), provider_name, coalesce(service_name, 'unknown service'), billing_currency,
        coalesce(resource_id, '(no resource)')

    union all

    select
        cast(hour_start as date),
        'workload',
        workload,
        'effective_cost',
        currency,
        team,
        sum(effective_cost),
        cast(null as bigint)
    from ledger
    where workload is not null and category in ('inference', 'idle_deployed', 'training', 'batch')
    group by cast(hour_start as date), workload, currency, team

    union all

    select
        day,
        'model',
        model,
        'cost_per_1m_tokens_fully_loaded',
        currency,
        team,
        fully_loaded_cost,
        input_tokens + output_tokens
    from unit_economics
)

select * from series
