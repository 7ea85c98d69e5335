select * from {{ source('config', 'team_budgets') }}
