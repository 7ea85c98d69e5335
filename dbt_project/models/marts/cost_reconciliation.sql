{# The conservation invariant, visible: per billing period, provider and account, the ledger
   must hold every dollar of the source bill (amortised cost basis), within one cent. #}
with source as (
    select
        billing_period,
        provider_name as provider,
        billing_account_id,
        billing_currency as currency,
        sum(effective_cost) as source_effective_cost,
        sum(billed_cost) as source_billed_cost,
        count(*) as source_charges
    from {{ ref('int_billing_charges') }}
    group by billing_period, provider_name, billing_account_id, billing_currency
),

ledger as (
    select
        billing_period,
        provider,
        billing_account_id,
        currency,
        sum(effective_cost) as ledger_effective_cost,
        sum(billed_cost) as ledger_billed_cost,
        sum(case when team = '{{ var("unallocated_team") }}' then effective_cost else 0 end) as unallocated_cost
    from {{ ref('cost_ledger_hourly') }}
    where provider is not null
    group by billing_period, provider, billing_account_id, currency
)

select
    coalesce(source.billing_period, ledger.billing_period) as billing_period,
    coalesce(source.provider, ledger.provider) as provider,
    coalesce(source.billing_account_id, ledger.billing_account_id) as billing_account_id,
    coalesce(source.currency, ledger.currency) as currency,
    coalesce(source.source_charges, 0) as source_charges,
    {{ money('coalesce(source.source_effective_cost, 0)') }} as source_effective_cost,
    {{ money('coalesce(ledger.ledger_effective_cost, 0)') }} as ledger_effective_cost,
    {{ money('coalesce(ledger.unallocated_cost, 0)') }} as unallocated_cost,
    {{ money('coalesce(ledger.ledger_effective_cost, 0) - coalesce(source.source_effective_cost, 0)') }}
        as difference,
    {{ money('coalesce(ledger.ledger_billed_cost, 0) - coalesce(source.source_billed_cost, 0)') }}
        as billed_difference
from source
full outer join ledger
    on source.billing_period = ledger.billing_period
    and source.provider = ledger.provider
    and source.billing_account_id = ledger.billing_account_id
    and source.currency = ledger.currency
