{# One row per run of a training or batch job (rule 5): a run is a stretch of consecutive hours
   in which the job held any GPU; an hour in which it held none ends it. Runs are found from the
   job's hours in the ledger, so a run across midnight (or a month end) stays one run. #}
with job_hours as (
    select
        workload,
        category,
        team,
        currency,
        hour_start,
        sum(effective_cost) as cost,
        sum(gpu_hours) as gpu_hours,
        sum(energy_kwh) as energy_kwh,
        sum(co2e_kg) as co2e_kg
    from {{ ref('cost_ledger_hourly') }}
    where category in ('training', 'batch') and workload is not null and workload <> 'unmatched'
    group by workload, category, team, currency, hour_start
    having sum(gpu_hours) > 0
),

run_starts as (
    select
        job_hours.*,
        case
            when lag(hour_start) over by_job = hour_start - interval 1 hour then 0
            else 1
        end as starts_run
    from job_hours
    window by_job as (partition by workload, category, team, currency order by hour_start)
),

numbered as (
    select
        run_starts.*,
        sum(starts_run) over (
            partition by workload, category, team, currency order by hour_start rows unbounded preceding
        ) as run_number
    from run_starts
)

select
    workload || '@' || cast(min(hour_start) as varchar) as run_id,
    workload,
    category,
    team,
    currency,
    min(hour_start) as run_start,
    max(hour_start) + interval 1 hour as run_end,
    count(*) as hours,
    sum(gpu_hours) as gpu_hours,
    {{ money('sum(cost)') }} as cost,
    sum(energy_kwh) as energy_kwh,
    sum(co2e_kg) as co2e_kg
from numbered
group by workload, category, team, currency, run_number
