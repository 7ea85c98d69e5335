{# What each team spent each day, by category and provider, with where its month is heading:
   month-to-date and a straight-line month-end forecast (month-to-date / days elapsed x days in
   the month) over all the team's categories and providers, against its monthly budget. #}
with ledger as (
    select * from {{ ref('cost_ledger_hourly') }}
),

budgets as (
    select * from {{ ref('stg_config__team_budgets') }}
),

daily as (
    select
        cast(hour_start as date) as day,
        team,
        category,
        provider,
        currency,
        sum(effective_cost) as effective_cost,
        sum(billed_cost) as billed_cost,
        sum(gpu_hours) as gpu_hours,
        sum(energy_kwh) as energy_kwh,
        sum(co2e_kg) as co2e_kg
    from ledger
    group by cast(hour_start as date), team, category, provider, currency
),

team_days as (
    select
        day,
        team,
        currency,
        date_trunc('month', day) as month_start,
        sum(effective_cost) as team_day_cost
    from daily
    group by day, team, currency
),

month_to_date as (
    select
        team_days.*,
        sum(team_day_cost) over (
            partition by team, currency, month_start order by day rows between unbounded preceding and current row
        ) as month_to_date_cost,
        extract(day from day) as days_elapsed,
        round({{ seconds_between('month_start', add_months('month_start', 1)) }} / 86400) as days_in_month
    from team_days
)

select
    daily.day,
    daily.team,
    daily.category,
    daily.provider,
    daily.currency,
    {{ money('daily.effective_cost') }} as effective_cost,
    {{ money('daily.billed_cost') }} as billed_cost,
    daily.gpu_hours,
    daily.energy_kwh,
    daily.co2e_kg,
    {{ money('month_to_date.month_to_date_cost') }} as month_to_date_cost,
    {{ allocate('month_to_date.month_to_date_cost', 'month_to_date.days_in_month / month_to_date.days_elapsed') }}
        as month_end_forecast,
    budgets.monthly_budget,
    case when budgets.monthly_budget is not null then
        month_to_date.month_to_date_cost * month_to_date.days_in_month / month_to_date.days_elapsed
            > budgets.monthly_budget
    end as forecast_over_budget
from daily
inner join month_to_date
    on daily.day = month_to_date.day
    and daily.team = month_to_date.team
    and daily.currency = month_to_date.currency
left join budgets
    on daily.team = budgets.team
    and daily.currency = budgets.currency
