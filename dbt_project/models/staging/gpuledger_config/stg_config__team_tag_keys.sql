select * from {{ source('config', 'team_tag_keys') }}
