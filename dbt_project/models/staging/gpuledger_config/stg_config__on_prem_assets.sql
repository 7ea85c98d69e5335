select * from {{ source('config', 'on_prem_assets') }}
