select * from {{ source('config', 'process_workloads') }}
