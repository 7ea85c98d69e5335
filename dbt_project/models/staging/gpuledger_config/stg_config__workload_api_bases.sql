select * from {{ source('config', 'workload_api_bases') }}
