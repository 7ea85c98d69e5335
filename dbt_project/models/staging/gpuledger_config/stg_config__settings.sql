select * from {{ source('config', 'settings') }}
