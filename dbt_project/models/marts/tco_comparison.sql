{# What each workload's GPU time cost, month by month, against the same GPU-hours at cloud
   prices: on-demand, spot and committed (1-year), each the cheapest per-GPU-hour price for that
   GPU model in the seed cloud_gpu_prices (which names each price's source and date). Held time
   only: an inference deployment's idle_deployed hours count, the GPU's unheld idle does not. #}
with held as (
    select
        date_trunc('month', hour_start) as month,
        workload,
        provider_name as provider,
        gpu_model,
        billing_currency as currency,
        sum(gpu_hours) as gpu_hours,
        sum(effective_cost) as effective_cost,
        sum(energy_kwh) as energy_kwh
    from {{ ref('int_gpu_hour_allocation') }}
    where holder_kind in ('inference', 'training', 'batch') and workload is not null
    group by date_trunc('month', hour_start), workload, provider_name, gpu_model, billing_currency
),

prices as (
    select
        gpu_model,
        pricing_category,
        currency,
        price_per_gpu_hour,
        source,
        effective_date,
        row_number() over (
            partition by gpu_model, pricing_category, currency order by price_per_gpu_hour, provider, instance_type
        ) as cheapest
    from {{ ref('cloud_gpu_prices') }}
),

{% set categories = {'on_demand': 'Standard', 'spot': 'Dynamic', 'committed': 'Committed'} %}

compared as (
    select
        held.*,
        {% for name, category in categories.items() %}
        {{ name }}.price_per_gpu_hour as {{ name }}_price_per_gpu_hour,
        {{ name }}.source || ' (' || cast({{ name }}.effective_date as varchar) || ')' as {{ name }}_price_source{{ ',' if not loop.last }}
        {% endfor %}
    from held
    {% for name, category in categories.items() %}
    left join prices as {{ name }}
        on held.gpu_model = {{ name }}.gpu_model
        and held.currency = {{ name }}.currency
        and {{ name }}.pricing_category = '{{ category }}'
        and {{ name }}.cheapest = 1
    {% endfor %}
)

select
    cast(month as date) as month,
    workload,
    provider,
    gpu_model,
    currency,
    gpu_hours,
    energy_kwh,
    {{ money('effective_cost') }} as actual_cost,
    case when gpu_hours > 0 then {{ allocate('effective_cost', '1.0 / gpu_hours') }} end as actual_cost_per_gpu_hour,
    {% for name in categories %}
    {{ allocate(name ~ '_price_per_gpu_hour', 'gpu_hours') }} as {{ name }}_cost,
    {{ name }}_price_source{{ ',' if not loop.last }}
    {% endfor %}
from compared
