select * from {{ source('config', 'workload_models') }}
