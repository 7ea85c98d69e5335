select * from {{ source('config', 'grid_regions') }}
