{# Rule 1: a charge that spans several hours is spread evenly over them. Built for the ledger's
   window (its hours; a charge is counted over all of its hours wherever they fall). #}
with charges as (
    select * from {{ ref('int_billing_charges') }}
    where {{ overlaps_day_window('charge_period_start', 'charge_period_end') }}
),

charge_hours as (
    select
        charge_id,
        {{ hours_of('charge_period_start', 'charge_period_end') }} as hour_start
    from charges
),

hour_counts as (
    select charge_id, count(*) as hours
    from charge_hours
    group by charge_id
)

select
    charges.charge_id,
    charge_hours.hour_start,
    charges.billing_period,
    charges.provider_name,
    charges.billing_account_id,
    charges.billing_currency,
    charges.resource_id,
    charges.service_name,
    charges.charge_category,
    charges.is_gpu_compute,
    charges.gpu_count,
    charges.gpu_model,
    charges.team_tag,
    {{ allocate('charges.effective_cost', '1.0 / hour_counts.hours') }} as effective_cost,
    {{ allocate('charges.billed_cost', '1.0 / hour_counts.hours') }} as billed_cost,
    {{ allocate('charges.list_cost', '1.0 / hour_counts.hours') }} as list_cost,
    {{ quantity('charges.consumed_quantity / hour_counts.hours') }} as consumed_hours
from charges
inner join charge_hours on charges.charge_id = charge_hours.charge_id
inner join hour_counts on charges.charge_id = hour_counts.charge_id
where {{ in_day_window('charge_hours.hour_start') }}
