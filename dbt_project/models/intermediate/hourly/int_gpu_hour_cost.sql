{# Rule 2: an instance-hour of GPU compute, split evenly over the instance's GPUs. #}
with gpu_charge_hours as (
    select * from {{ ref('int_charge_hours') }}
    where is_gpu_compute and {{ in_day_window('hour_start') }}
),

instance_hours as (
    select
        hour_start,
        billing_period,
        provider_name,
        billing_account_id,
        billing_currency,
        resource_id,
        gpu_model,
        gpu_count,
        max(team_tag) as team_tag,
        sum(effective_cost) as effective_cost,
        sum(billed_cost) as billed_cost,
        sum(list_cost) as list_cost,
        least(coalesce(sum(consumed_hours), 0), 1) as billed_hours
    from gpu_charge_hours
    group by hour_start, billing_period, provider_name, billing_account_id, billing_currency,
        resource_id, gpu_model, gpu_count
),

gpu_slots as (
    select
        instance_hours.*,
        {{ indexes_below('gpu_count') }} as gpu_index
    from instance_hours
)

select
    hour_start,
    billing_period,
    provider_name,
    billing_account_id,
    billing_currency,
    resource_id,
    gpu_index,
    gpu_model,
    team_tag,
    {{ allocate('effective_cost', '1.0 / gpu_count') }} as effective_cost,
    {{ allocate('billed_cost', '1.0 / gpu_count') }} as billed_cost,
    {{ allocate('list_cost', '1.0 / gpu_count') }} as list_cost,
    billed_hours as billed_gpu_hours
from gpu_slots
