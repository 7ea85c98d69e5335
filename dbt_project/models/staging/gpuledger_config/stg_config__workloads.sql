select * from {{ source('config', 'workloads') }}
