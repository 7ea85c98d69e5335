select * from {{ source('config', 'hosts') }}
