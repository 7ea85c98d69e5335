select * from {{ source('config', 'team_identities') }}
